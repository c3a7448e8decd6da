"""Base vs tuned on the held-out test split: the numbers a run is judged by.

Both models are scored by the run's task on the same test rows: the base as it was before
training, then the base with what the run trained put back on it.
"""

from __future__ import annotations

from pathlib import Path

from tuneloop.errors import TuneloopError
from tuneloop.evaluate.model_card import write_model_card
from tuneloop.evaluate.per_task import limit_rows, per_task_scores
from tuneloop.evaluate.report import write_report
from tuneloop.evaluate.suite import Scoring
from tuneloop.evaluate.suites import SUITES
from tuneloop.evaluate.trust import TRUST_KEY, run_trust_section
from tuneloop.methods import get_method
from tuneloop.objectives import get_task
from tuneloop.progress import status
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_base_model, load_tuned_model
from tuneloop.text.metrics import choose_primary


def evaluate_run(run_dir: str | Path, max_examples: int | None = None, judge_reward_run: str | None = None) -> dict:
    """Evaluate a finished run; writes ``metrics.json`` and the report, returns the metrics.

    Beside base vs tuned on the test rows: every suite of ``evaluate/suites.py`` (few-shot
    baselines of the base model, forgetting on the general suite, ...) where it applies; where
    it does not, its entry says why.
    """
    run = RunDir.existing(run_dir)
    run.artifact()  # refuses an unfinished run before any model is loaded
    config = run.config()
    if judge_reward_run is not None:  # the alignment suite's judge, chosen after training
        config = config.model_copy(update={"eval": config.eval.model_copy(update={"judge_reward_run": judge_reward_run})})
    if not run.has_split("test"):  # e.g. a folder written by `tuneloop merge`
        raise TuneloopError(f"{run.path} has no splits/test.jsonl to evaluate on; evaluate the runs it was made from")
    test = run.split("test")
    limit = max_examples if max_examples is not None else config.eval.max_examples
    test = limit_rows(test, limit)
    if not test:
        raise TuneloopError(f"{run.path}: the test split is empty; set data.test_fraction > 0 or give --test-data")
    task, labels = get_task(config.task), run.labels()
    plans, skipped = plan_suites(run, config, task, test)  # e.g. a few-shot k too large fails here, before any model loads
    base_model, tokenizer = load_base_model(run_dir)
    base = score_model(task, base_model, tokenizer, test, config, labels, "base model", packs=task.packs)
    base_suites = score_suites(plans, base_model, tokenizer, Scoring(task, config, "base", task.packs, base["predictions"]))
    del base_model
    model, tokenizer = load_tuned_model(run_dir)
    packs = get_method(config.method.name).packs_with(task)
    model = merged_for_inference(model)
    tuned = score_model(task, model, tokenizer, test, config, labels, "tuned model", packs)
    tuned_suites = score_suites(plans, model, tokenizer, Scoring(task, config, "tuned", packs, tuned["predictions"]))
    metrics = assemble_metrics(base, tuned, test, config, task)
    metrics.update(training_privacy(run))
    metrics.update(suite_sections(plans, skipped, base_suites, tuned_suites, config))
    metrics[TRUST_KEY] = run_trust_section(run, metrics)
    metrics.update(per_task_scores(task, test, base["predictions"], tuned["predictions"], config))
    rows = prediction_rows(test, base["predictions"], tuned["predictions"])
    run.write_rows(run.predictions_file.name, rows)
    for name, plan in plans.items():
        for filename, file_rows in SUITES[name].files(plan, base_suites[name], tuned_suites[name]).items():
            run.write_rows(filename, file_rows)
    run.write_metrics(metrics)
    write_report(run.path, metrics, run.log_records(), rows[:8])
    write_model_card(run, metrics)
    return metrics


def plan_suites(run: RunDir, config, task, test: list) -> tuple[dict, dict[str, str]]:
    """({name: plan} of the suites that apply, {name: why not} of the others), before any model loads."""
    plans, skipped = {}, {}
    for name, suite in SUITES.items():
        reason = suite.applies(task, config)
        if reason is None:
            plans[name] = suite.plan(run, config, task, test)
        else:
            skipped[name] = reason
    return plans, skipped


def score_suites(plans: dict, model, tokenizer, scoring: Scoring) -> dict[str, dict]:
    """One model's scores on every planned suite."""
    return {name: SUITES[name].score(plan, model, tokenizer, scoring) for name, plan in plans.items()}


def suite_sections(plans: dict, skipped: dict[str, str], base: dict, tuned: dict, config) -> dict:
    """metrics.json's entry of every suite, in the registry's order: its section, or why it was not measured."""
    sections = {}
    for name, suite in SUITES.items():
        if name in plans:
            sections[name] = suite.section(plans[name], base[name], tuned[name], config)
        else:
            sections[name] = {"skipped": skipped[name]}
    return sections


def merged_for_inference(model):
    """Fold a LoRA-style adapter into the weights: same outputs, no adapter overhead per token."""
    try:
        return model.merge_and_unload()
    except (AttributeError, ValueError, NotImplementedError):  # prompt-learning methods cannot merge
        return model


def score_model(task, model, tokenizer, test, config, labels, label: str, packs: bool) -> dict:
    """The task's scores and predictions of one model on the test rows."""
    with status(f"Evaluating the {label} on {len(test)} test rows"):
        return task.score(model, tokenizer, test, config, labels, packs)


def assemble_metrics(base: dict, tuned: dict, test, config, task) -> dict:
    """metrics.json: headline metric, base and tuned scores, and any per-task extras (confusion matrices)."""
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


# train.json's dp entries that metrics.json repeats: the guarantee and what it was computed from.
DP_FIELDS = ("epsilon", "delta", "steps", "noise_multiplier", "sample_rate", "expected_batch_rows", "max_grad_norm", "accountant", "training_rows")


def training_privacy(run: RunDir) -> dict:
    """``{"dp": ...}``: the (epsilon, delta) a DP-SGD run was trained to, from its ``train.json``; empty for other runs."""
    summary = run.train_summary() if run.train_summary_file.is_file() else {}
    if "dp" not in summary:
        return {}
    return {"dp": {name: summary["dp"][name] for name in DP_FIELDS}}


def prediction_rows(test, base_predictions, tuned_predictions) -> list[dict]:
    return [
        {"source": f"{ex.source}:{ex.line}", "prompt": ex.input_text, "reference": ex.target_text, "base": b, "tuned": t}
        for ex, b, t in zip(test, base_predictions, tuned_predictions)
    ]
