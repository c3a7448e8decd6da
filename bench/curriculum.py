"""Curriculum ablation: the demo's triage job trained in random order vs easy-to-hard orders, same run.

Every variant is the same ``tuneloop train configs/support_triage.yaml`` (same data, split, model,
LoRA settings, learning rate and number of steps) except the order of the training stream:

* ``random``: the default shuffled packing;
* ``length``: ``--curriculum length`` (short examples first);
* ``loss``: ``--curriculum loss`` (examples the base model already predicts well first).

Each is then scored with ``tuneloop eval`` on the same held-out test tickets. The table holds
validation loss along the run (every ``--eval-every`` steps), the best and final validation loss,
and the test metrics; the chart plots the validation curves. A variant whose ``metrics.json``
exists is not re-run.

    python bench/curriculum.py                    # runs/curriculum/*, docs/results/curriculum/*
    python bench/curriculum.py --steps 12 --out /tmp/cur --results /tmp/cur/results
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
from pathlib import Path

from commands import ROOT, run_recorded  # bench/ is the script's folder, so it is importable

CONFIG = "configs/support_triage.yaml"
TASK_METRICS = ("json_field_accuracy", "exact_match", "json_valid", "loss")
VARIANTS = {"random": [], "length": ["--curriculum", "length"], "loss": ["--curriculum", "loss"]}


def commands(name: str, flags: list[str], out: Path, steps: int, eval_every: int, test_rows: int) -> list[list[str]]:
    run = out / name
    train = [
        "tuneloop", "train", CONFIG, "--out", str(run), "--max-steps", str(steps), "--eval-steps", str(eval_every),
        "--early-stopping-patience", "0", "--few-shot", "", "--no-forgetting", *flags,
    ]  # fmt: skip  (baselines and the forgetting suite are not what this ablation is about)
    evaluate = ["tuneloop", "eval", str(run), "--max-examples", str(test_rows)]
    return [train, evaluate]


def validation_curve(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]


def result_row(name: str, run: Path, cmds: list[list[str]]) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    train = json.loads((run / "train.json").read_text())
    curve = validation_curve(run)
    return {
        "variant": name,
        "curriculum": train.get("curriculum"),
        "steps": train["steps"],
        "real_tokens": train["real_tokens"],
        "train_seconds": train["seconds"],
        "validation_curve": curve,
        "best_val_loss": min(loss for _, loss in curve),
        "final_val_loss": curve[-1][1],
        "test_examples": metrics["test_examples"],
        "base": {m: metrics["base"].get(m) for m in TASK_METRICS},
        "tuned": {m: metrics["tuned"].get(m) for m in TASK_METRICS},
        "commands": [shlex.join(c) for c in cmds],
    }


def render_markdown(result: dict) -> str:
    rows = result["variants"]
    steps = [step for step, _ in rows[0]["validation_curve"]]
    lines = [
        "# Curriculum ablation: random order vs easy-to-hard",
        "",
        f"Measured {result['date']} on {result['machine']} (CPU only), smollm2-135m-instruct, LoRA r=16 on the "
        f"support-triage job (`{CONFIG}`), {result['steps']} steps for every variant, same data, split and "
        f"learning rate; only the order of the training stream differs. Test metrics on the first "
        f"{rows[0]['test_examples']} held-out test tickets. Chart: [curriculum.png](curriculum.png).",
        "",
        "| variant | " + " | ".join(f"val loss @{s}" for s in steps) + " | best val loss | json_field_accuracy | exact_match | test loss | train s |",
        "|---|" + "---:|" * (len(steps) + 5),
    ]
    for row in rows:
        curve = " | ".join(f"{loss:.4f}" for _, loss in row["validation_curve"])
        tuned = row["tuned"]
        lines.append(
            f"| {row['variant']} | {curve} | {row['best_val_loss']:.4f} | {tuned['json_field_accuracy']:.3f} "
            f"| {tuned['exact_match']:.3f} | {tuned['loss']:.4f} | {row['train_seconds']:.0f} |"
        )
    lines += ["", *reading(rows), "", "Commands (`python bench/curriculum.py` runs them all and writes this file):", "", "```bash"]
    lines += [command for row in rows for command in row["commands"]]
    lines += ["```", ""]
    return "\n".join(lines)


def reading(rows: list[dict]) -> list[str]:
    """One sentence per curriculum variant against random order, every figure read from the rows."""
    by_name = {row["variant"]: row for row in rows}
    random_row = by_name.get("random")
    if random_row is None:
        return []
    lines = ["Against random order (computed from the table):", ""]
    for row in rows:
        if row is random_row:
            continue
        lines.append(
            f"- {row['variant']}: best validation loss {row['best_val_loss'] - random_row['best_val_loss']:+.4f}, "
            f"json_field_accuracy {row['tuned']['json_field_accuracy'] - random_row['tuned']['json_field_accuracy']:+.3f}, "
            f"exact_match {row['tuned']['exact_match'] - random_row['tuned']['exact_match']:+.3f}."
        )
    return lines


def curve_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for row in rows:
        steps, losses = zip(*row["validation_curve"])
        ax.plot(steps, losses, marker="o", label=row["variant"])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.set_title("Validation loss by training order")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/curriculum"), help="Folder of the runs.")
    parser.add_argument("--results", type=Path, default=Path("docs/results/curriculum"), help="Folder of the result files.")
    parser.add_argument("--steps", type=int, default=16, help="Optimiser steps of every variant.")
    parser.add_argument("--eval-every", type=int, default=8, help="Validation loss every N steps.")
    parser.add_argument("--test-rows", type=int, default=30, help="Held-out test tickets each variant is scored on.")
    parser.add_argument("--only", default="", help="Comma-separated variants to run (default: all).")
    args = parser.parse_args()

    from tuneloop.atomic import write_json_atomic, write_text_atomic

    chosen = {name: flags for name, flags in VARIANTS.items() if not args.only or name in args.only.split(",")}
    rows = []
    for name, flags in chosen.items():
        cmds = commands(name, flags, args.out, args.steps, args.eval_every, args.test_rows)
        run = args.out / name if args.out.is_absolute() else ROOT / args.out / name
        run_recorded(name, cmds, run)
        rows.append(result_row(name, run, cmds))
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "steps": args.steps,
        "variants": rows,
    }
    results = args.results if args.results.is_absolute() else ROOT / args.results
    write_json_atomic(results / "curriculum.json", result)
    curve_plot(rows, results / "curriculum.png")
    write_text_atomic(results / "curriculum.md", render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
