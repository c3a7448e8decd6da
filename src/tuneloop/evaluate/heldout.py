"""Base vs tuned on the held-out test split: the numbers a run is judged by.

Both models are evaluated in one process on the same test rows: the tuned one is the base with
the run's adapter attached, and the base is the same object with the adapter disabled.
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
    from tuneloop.models.adapters import load_base_model, load_tuned_model, run_artifact

    run_dir = Path(run_dir)
    run_artifact(run_dir)  # refuses an unfinished run before any model is loaded
    config = load_config(run_dir / "config.yaml")
    test = load_split(run_dir / "splits" / "test.jsonl")
    limit = max_examples if max_examples is not None else config.eval.max_examples
    test = test[:limit] if limit else test
    if not test:
        raise TuneloopError(f"{run_dir}: the test split is empty; set data.test_fraction > 0")
    base_model, tokenizer = load_base_model(run_dir)
    base = score_model(base_model, tokenizer, test, config, "base model")
    del base_model
    model, tokenizer = load_tuned_model(run_dir)
    packs = get_method(config.method.name).packs
    tuned = score_model(merged_for_inference(model), tokenizer, test, config, "tuned model", packs)
    metrics = assemble_metrics(base, tuned, test, config)
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


def score_model(model, tokenizer, test, config, label: str, packs: bool = True) -> dict:
    """Predictions, text metrics and held-out loss of one model on the test rows."""
    from tuneloop.evaluate.generate import generate_texts
    from tuneloop.evaluate.loss import heldout_loss
    from tuneloop.evaluate.metrics import compute_text_metrics, load_metric_hook
    from tuneloop.progress import status
    from tuneloop.train.sft_data import render_prompt, tokenize_chat

    prompts = [render_prompt(tokenizer, ex.messages[:-1]) for ex in test]
    references = [ex.target_text for ex in test]
    with status(f"Evaluating the {label} on {len(test)} test rows"):
        predictions = generate_texts(model, tokenizer, prompts, config.eval.max_new_tokens, config.eval.batch_size)
        loss = heldout_loss(model, tokenizer, [tokenize_chat(tokenizer, ex) for ex in test], pack=packs)
    scores = compute_text_metrics(predictions, references)
    if config.eval.metric_hook:
        scores.update(load_metric_hook(config.eval.metric_hook)(predictions, references))
    return {"scores": {**scores, **loss}, "predictions": predictions}


def assemble_metrics(base: dict, tuned: dict, test, config) -> dict:
    from tuneloop.evaluate.metrics import choose_primary

    primary = choose_primary(tuned["scores"], config.eval.primary)
    return {
        "primary": primary,
        "base": base["scores"],
        "tuned": tuned["scores"],
        "test_examples": len(test),
        "model": config.model.name,
        "method": config.method.name,
    }


def prediction_rows(test, base_predictions, tuned_predictions) -> list[dict]:
    return [
        {"source": f"{ex.source}:{ex.line}", "prompt": ex.input_text, "reference": ex.target_text, "base": b, "tuned": t}
        for ex, b, t in zip(test, base_predictions, tuned_predictions)
    ]


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
