"""``tuneloop monitor``: are live prompts still like the training prompts, and are users content?

Compares the user turns of a project's recent requests with those of the training split of its
production version (MiniLM embeddings + MMD permutation test, lengths, vocabulary) and reads the
negative-feedback rate with its Wilson interval. Writes ``monitor.json`` and plots; the caller
exits non-zero when an alert fires, so cron or CI can act on it.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.atomic import write_bytes_atomic, write_json_atomic
from tuneloop.errors import TuneloopError
from tuneloop.monitor.drift import mean_difference_test, mmd_permutation_test, vocabulary_shift, wilson_interval, words
from tuneloop.monitor.embed import embed_texts
from tuneloop.runs.folder import RunDir
from tuneloop.store.feedback import rating_counts
from tuneloop.store.requests import recent
from tuneloop.store.versions import production


@dataclass(frozen=True)
class Thresholds:
    drift_p_value: float = 0.01  # alert when the MMD test's p-value is below this
    max_negative_rate: float = 0.3  # alert when the interval's lower bound is above this
    min_requests: int = 20  # fewer live prompts: no drift verdict


@dataclass
class MonitorReport:
    project: str
    version_id: str
    window_start: float
    train_prompts: int
    live_prompts: int
    checks: dict = field(default_factory=dict)  # name -> {value..., "alert": bool, "note": str}
    embeddings: object = None  # [train + live, 384] tensor, for the plot

    @property
    def alerts(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.get("alert")]


def user_text(messages) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def live_prompt_text(logged_prompt: str) -> str:
    """The user's words of a logged request (chat requests are logged as JSON messages)."""
    try:
        messages = json.loads(logged_prompt)
    except json.JSONDecodeError:
        return logged_prompt
    return user_text(messages) if isinstance(messages, list) else logged_prompt


def training_prompts(run_path: Path, limit: int, seed: int = 0) -> list[str]:
    run = RunDir(Path(run_path))
    if not run.has_split("train"):
        raise TuneloopError(f"{run_path} has no splits/train.jsonl to compare live prompts with")
    texts = [user_text(ex.messages) if ex.messages else ex.input_text for ex in run.split("train")]
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def monitor_project(conn, project: str, window_s: float, thresholds: Thresholds, sample: int = 400) -> MonitorReport:
    """Run every check for ``project``'s production version over the last ``window_s`` seconds."""
    version = production(conn, project)
    if version is None:
        raise TuneloopError(f"project {project!r} has no production version to monitor (tuneloop models promote ...)")
    since = time.time() - window_s
    live = [live_prompt_text(r.prompt) for r in recent(conn, project=project, since=since, limit=sample)]
    train = training_prompts(version.run_path, sample)
    report = MonitorReport(project, version.id, since, len(train), len(live))
    if len(live) >= thresholds.min_requests:
        report.checks.update(input_checks(train, live, thresholds, report))
    else:
        report.checks["input_drift"] = {"alert": False, "note": f"{len(live)} live prompts; at least {thresholds.min_requests} needed"}
    report.checks["negative_feedback"] = feedback_check(conn, project, since, thresholds)
    return report


def input_checks(train: list[str], live: list[str], thresholds: Thresholds, report: MonitorReport) -> dict:
    embedded = report.embeddings = embed_texts(train + live)
    drift = mmd_permutation_test(embedded[: len(train)], embedded[len(train) :])
    lengths = mean_difference_test([len(words(t)) for t in train], [len(words(t)) for t in live])
    vocabulary = vocabulary_shift(train, live)
    return {
        "input_drift": {"mmd2": drift.statistic, "p_value": drift.p_value, "alert": drift.p_value < thresholds.drift_p_value,
                        "note": "MiniLM embeddings, RBF-kernel MMD, permutation test"},
        "length_shift": {"train_mean_words": sum(len(words(t)) for t in train) / len(train),
                         "live_mean_words": sum(len(words(t)) for t in live) / len(live),
                         "p_value": lengths.p_value, "alert": False, "note": "informational"},
        "vocabulary_shift": {**vocabulary, "alert": False, "note": "informational"},
    }  # fmt: skip


def feedback_check(conn, project: str, since: float, thresholds: Thresholds) -> dict:
    up = down = 0
    for counts in rating_counts(conn, project=project, since=since):
        up, down = up + counts.up, down + counts.down
    low, high = wilson_interval(down, up + down)
    return {
        "rated": up + down, "down": down, "negative_rate": down / (up + down) if up + down else None,
        "ci95": [low, high], "alert": bool(up + down) and low > thresholds.max_negative_rate,
        "note": f"alert when the 95% interval lies above {thresholds.max_negative_rate}",
    }  # fmt: skip


def write_outputs(report: MonitorReport, out: Path) -> Path:
    """``monitor.json`` and ``drift.png`` (embedding projection + prompt lengths) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if report.embeddings is not None:
        plot_embeddings(report.embeddings, report.train_prompts, out / "drift.png")
    facts = {k: v for k, v in vars(report).items() if k not in ("checks", "embeddings")}
    payload = {**facts, "checks": report.checks, "alerts": report.alerts}
    write_json_atomic(out / "monitor.json", payload)
    return out / "monitor.json"


def plot_embeddings(embeddings, train_count: int, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    centred = embeddings - embeddings.mean(0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ components[:2].T).numpy()
    fig, axis = plt.subplots(figsize=(6, 5))
    axis.scatter(points[:train_count, 0], points[:train_count, 1], s=10, alpha=0.5, label="training prompts")
    axis.scatter(points[train_count:, 0], points[train_count:, 1], s=14, alpha=0.8, label="live prompts")
    axis.set_title("prompt embeddings (first two principal components)")
    axis.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
