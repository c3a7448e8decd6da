"""``tuneloop compare``: the same model and data through several methods, one table.

Each method trains and evaluates in its own process, so its peak memory is its own. A method
that cannot apply (prefix tuning on an architecture without key/value caches, say) keeps its
row with the reason instead of stopping the comparison.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import time
from pathlib import Path

from tuneloop.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from tuneloop.config import RunConfig, build_config, method_section_for, read_raw_config
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.evaluate.heldout import evaluate_run
from tuneloop.methods import get_method
from tuneloop.progress import quiet_libraries
from tuneloop.runs.folder import RunDir
from tuneloop.train.run import train


def compare_methods(config: dict, methods: list[str], out: Path) -> list[dict]:
    """Train and evaluate ``config`` (as read, see :func:`read_compare_config`) once per method under
    ``out/<method>``; returns the rows."""
    for name in methods:
        get_method(name)  # unknown names fail before any training
    out = Path(out)
    rows = []
    for name in methods:
        try:
            method_config = config_for_method(config, name, out / name)
        except ConfigError as err:  # a setting this method cannot take (replay_loss kl with full, say)
            rows.append({"method": name, "error": str(err)})
        else:
            rows.append(run_isolated(method_config))
        write_json_atomic(out / "compare.json", rows)  # partial results survive an interruption
    write_text_atomic(out / "compare.md", render_table(rows))
    plot_comparison(rows, out / "compare.png")
    return rows


def read_compare_config(path: str | Path | None, overrides: dict, methods: list[str]) -> dict:
    """The config as read (YAML + flags): its ``method:`` section may hold the settings of every compared
    method (r for LoRA, num_virtual_tokens for prompt tuning, ...). ConfigError now when no compared
    method can take it (a mistake in a shared section); a method that alone cannot keeps its row with the reason."""
    raw, _ = read_raw_config(path, overrides)
    errors = []
    for name in methods:
        try:
            config_for_method(raw, name, Path(raw.get("out") or "."))
            return raw
        except ConfigError as err:
            errors.append(err)
    raise errors[0] if errors else ConfigError("--methods: name at least one method to compare")


def config_for_method(config: dict, name: str, out: Path) -> RunConfig:
    """``config`` with method ``name``, which takes the settings of the method section it has; its usual
    learning rate unless the user chose one. ConfigError when the method cannot take the config."""
    raw = copy.deepcopy(config)
    raw.update(out=str(out), method=method_section_for(name, raw.get("method") or {}))
    train = raw.setdefault("train", {})
    if "learning_rate" not in train:
        train["learning_rate"] = get_method(name).learning_rate
    return build_config(raw, origin=f"the config with method {name!r}")


def run_isolated(config: RunConfig) -> dict:
    """Train + evaluate in a fresh process; returns its row (or the error that stopped it)."""
    context = multiprocessing.get_context("spawn")
    result = Path(config.out).with_suffix(".result.json")
    result.parent.mkdir(parents=True, exist_ok=True)
    process = context.Process(target=_train_and_evaluate, args=(config.model_dump(mode="json"), str(result)))
    process.start()
    process.join()
    if not result.exists():
        return {"method": config.method.name, "error": f"worker died with exit code {process.exitcode}"}
    row = json.loads(result.read_text())
    result.unlink()
    return row


def _train_and_evaluate(raw_config: dict, result_path: str) -> None:
    import resource

    quiet_libraries()  # a spawned process starts without the parent's warning filters
    config = RunConfig.model_validate(raw_config)
    started = time.perf_counter()
    try:
        run = train(config)
        metrics = evaluate_run(run)
        row = method_row(config, run, metrics, time.perf_counter() - started)
    except TuneloopError as err:
        row = {"method": config.method.name, "error": str(err)}
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    write_json_atomic(result_path, row)


def method_row(config: RunConfig, run: Path, metrics: dict, seconds: float) -> dict:
    summary = RunDir(run).train_summary()
    artifact = run / get_method(config.method.name).artifact
    primary = metrics["primary"]
    return {
        "method": config.method.name,
        "trainable_parameters": summary["trainable_parameters"],
        "trainable_percent": round(100 * summary["trainable_parameters"] / summary["total_parameters"], 4),
        "train_seconds": summary["seconds"],
        "total_seconds": round(seconds, 1),
        "artifact_mb": round(sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file()) / 2**20, 2),
        "learning_rate": config.train.learning_rate,
        "metric": primary,
        "base": metrics["base"][primary],
        "tuned": metrics["tuned"][primary],
    }


def render_table(rows: list[dict]) -> str:
    lines = [
        "| method | trainable | % | lr | train s | peak RSS MB | artefact MB | metric | base | tuned |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['method']} | not applicable: {row['error']} ||||||||| ")
            continue
        lines.append(
            f"| {row['method']} | {row['trainable_parameters']:,} | {row['trainable_percent']:.2f} | {row['learning_rate']:g} "
            f"| {row['train_seconds']:.0f} "
            f"| {row['peak_rss_mb']:.0f} | {row['artifact_mb']:.2f} | {row['metric']} | {row['base']:.3f} | {row['tuned']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_comparison(rows: list[dict], path: Path) -> None:
    """Tuned metric (bars) against trainable share (log scale), one bar per method."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [row for row in rows if "error" not in row]
    if not done:
        return
    fig, (quality, size) = plt.subplots(1, 2, figsize=(11, 4))
    names = [row["method"] for row in done]
    quality.bar(names, [row["tuned"] for row in done], color="#2f7ed8", label="tuned")
    quality.plot(names, [row["base"] for row in done], "k--", label="base")
    quality.set_title(f"test {done[0]['metric']}")
    quality.legend()
    size.bar(names, [row["trainable_percent"] for row in done], color="#8bbc21")
    size.set_yscale("log")
    size.set_title("trainable parameters (%)")
    for axis in (quality, size):
        axis.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
