"""Base vs tuned on the held-out test split: the numbers a run is judged by.

Both models are scored by the run's task on the same test rows: the base as it was before
training, then the base with what the run trained put back on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.errors import TuneloopError


def evaluate_run(run_dir: str | Path, max_examples: int | None = None) -> dict:
    """Evaluate a finished run; writes ``metrics.json`` and the report, returns the metrics."""
    from tuneloop.config import load_config
    from tuneloop.data.pipeline import load_split
    from tuneloop.evaluate.report import write_report
    from tuneloop.methods import get_method
    from tuneloop.models.adapters import load_base_model, load_tuned_model, run_artifact, run_labels
    from tuneloop.objectives import get_task

    run_dir = Path(run_dir)
    run_artifact(run_dir)  # refuses an unfinished run before any model is loaded
    config = load_config(run_dir / "config.yaml")
    if not (run_dir / "splits" / "test.jsonl").is_file():  # e.g. a folder written by `tuneloop merge`
        raise TuneloopError(f"{run_dir} has no splits/test.jsonl to evaluate on; evaluate the runs it was made from")
    test = load_split(run_dir / "splits" / "test.jsonl")
    limit = max_examples if max_examples is not None else config.eval.max_examples
    test = test[:limit] if limit else test
    if not test:
        raise TuneloopError(f"{run_dir}: the test split is empty; set data.test_fraction > 0")
    task, labels = get_task(config.task), run_labels(run_dir)
    base_model, tokenizer = load_base_model(run_dir)
    base = score_model(task, base_model, tokenizer, test, config, labels, "base model", packs=task.packs)
    del base_model
    model, tokenizer = load_tuned_model(run_dir)
    packs = get_method(config.method.name).packs and task.packs
    tuned = score_model(task, merged_for_inference(model), tokenizer, test, config, labels, "tuned model", packs)
    metrics = assemble_metrics(base, tuned, test, config, task)
    rows = prediction_rows(test, base["predictions"], tuned["predictions"])
    write_text_atomic(run_dir / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_report(run_dir, metrics, read_log(run_dir / "log.jsonl"), rows[:8])
    return metrics


def merged_for_inference(model):
    """Fold a LoRA-style adapter into the weights: same outputs, no adapter overhead per token."""
    try:
        return model.merge_and_unload()
    except (AttributeError, ValueError, NotImplementedError):  # prompt-learning methods cannot merge
        return model


def score_model(task, model, tokenizer, test, config, labels, label: str, packs: bool) -> dict:
    """The task's scores and predictions of one model on the test rows."""
    from tuneloop.progress import status

    with status(f"Evaluating the {label} on {len(test)} test rows"):
        return task.score(model, tokenizer, test, config, labels, packs)


def assemble_metrics(base: dict, tuned: dict, test, config, task) -> dict:
    """metrics.json: headline metric, base and tuned scores, and any per-task extras (confusion matrices)."""
    from tuneloop.evaluate.metrics import choose_primary

    requested = task.default_primary if config.eval.primary == "auto" else config.eval.primary
    primary = choose_primary(tuned["scores"], requested)
    metrics = {
        "primary": primary,
        "base": base["scores"],
        "tuned": tuned["scores"],
        "test_examples": len(test),
        "task": config.task,
        "model": config.model.name,
        "method": config.method.name,
    }
    for key in tuned.keys() - {"scores", "predictions"}:
        metrics[key] = {"base": base.get(key), "tuned": tuned[key]}
    return metrics


def prediction_rows(test, base_predictions, tuned_predictions) -> list[dict]:
    return [
        {"source": f"{ex.source}:{ex.line}", "prompt": ex.input_text, "reference": ex.target_text, "base": b, "tuned": t}
        for ex, b, t in zip(test, base_predictions, tuned_predictions)
    ]


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
