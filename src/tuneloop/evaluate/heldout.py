"""Base vs tuned on the held-out test split: the numbers a run is judged by.

Both models are scored by the run's task on the same test rows: the base as it was before
training, then the base with what the run trained put back on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.config import load_config
from tuneloop.data.pipeline import load_split
from tuneloop.errors import TuneloopError
from tuneloop.evaluate import few_shot, forgetting
from tuneloop.evaluate.few_shot import few_shot_baselines, text_scores
from tuneloop.evaluate.forgetting import answer_rows, forgetting_section, general_suite_scores
from tuneloop.evaluate.per_task import limit_rows, per_task_scores
from tuneloop.evaluate.report import write_report
from tuneloop.methods import get_method
from tuneloop.objectives import get_task
from tuneloop.progress import status
from tuneloop.runs.models import load_base_model, load_tuned_model, run_artifact, run_labels
from tuneloop.text.metrics import choose_primary


def evaluate_run(run_dir: str | Path, max_examples: int | None = None) -> dict:
    """Evaluate a finished run; writes ``metrics.json`` and the report, returns the metrics.

    Beside base vs tuned on the test rows: few-shot baselines of the base model and the
    forgetting measures on the general suite (both where the task allows, see the report).
    """
    run_dir = Path(run_dir)
    run_artifact(run_dir)  # refuses an unfinished run before any model is loaded
    config = load_config(run_dir / "config.yaml")
    if not (run_dir / "splits" / "test.jsonl").is_file():  # e.g. a folder written by `tuneloop merge`
        raise TuneloopError(f"{run_dir} has no splits/test.jsonl to evaluate on; evaluate the runs it was made from")
    test = load_split(run_dir / "splits" / "test.jsonl")
    limit = max_examples if max_examples is not None else config.eval.max_examples
    test = limit_rows(test, limit)
    if not test:
        raise TuneloopError(f"{run_dir}: the test split is empty; set data.test_fraction > 0")
    task, labels = get_task(config.task), run_labels(run_dir)
    plan = plan_extras(run_dir, config, task, test)  # bad few-shot settings fail here, before any model loads
    base_model, tokenizer = load_base_model(run_dir)
    base = score_model(task, base_model, tokenizer, test, config, labels, "base model", packs=task.packs)
    base_extras = score_extras(plan, task, base_model, tokenizer, config, task.packs, base["predictions"])
    del base_model
    model, tokenizer = load_tuned_model(run_dir)
    packs = get_method(config.method.name).packs_with(task)
    model = merged_for_inference(model)
    tuned = score_model(task, model, tokenizer, test, config, labels, "tuned model", packs)
    tuned_extras = score_extras(plan.without_few_shot(), task, model, tokenizer, config, packs, None)
    metrics = assemble_metrics(base, tuned, test, config, task)
    metrics.update(extra_sections(plan, base_extras, tuned_extras, tuned["predictions"], task, config))
    metrics.update(per_task_scores(task, test, base["predictions"], tuned["predictions"], config))
    rows = prediction_rows(test, base["predictions"], tuned["predictions"])
    write_text_atomic(run_dir / "predictions.jsonl", jsonl(rows))
    if plan.forgetting:
        write_text_atomic(run_dir / "forgetting.jsonl", jsonl(answer_rows(base_extras["general"], tuned_extras["general"])))
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_report(run_dir, metrics, read_log(run_dir / "log.jsonl"), rows[:8])
    return metrics


@dataclass
class ExtraPlan:
    """What an evaluation measures beyond base vs tuned, decided before any model is loaded."""

    shots: list[int] = field(default_factory=list)  # k values of the few-shot baselines
    shot_examples: list = field(default_factory=list)  # the drawn training examples, k_max of them
    few_shot_test: list = field(default_factory=list)  # test rows the baselines answer
    few_shot_note: str | None = None  # why there are no baselines
    forgetting: bool = False
    forgetting_note: str | None = None  # why forgetting is not measured

    def without_few_shot(self) -> "ExtraPlan":
        return ExtraPlan(forgetting=self.forgetting)


def plan_extras(run_dir: Path, config, task, test: list) -> ExtraPlan:
    """Few-shot k values and shots (ConfigError for a k above the training split), and whether forgetting applies."""
    plan = ExtraPlan()
    train_path = run_dir / "splits" / "train.jsonl"
    train = few_shot.company_rows(load_split(train_path)) if train_path.is_file() else []
    plan.shots = few_shot.shots_for(config.eval, task.name, len(train))
    if plan.shots:
        plan.shot_examples = few_shot.draw_shots(train, max(plan.shots), config.data.seed)
        limit = config.eval.few_shot_max_examples
        plan.few_shot_test = test[:limit] if limit else test
    elif task.name not in few_shot.FEW_SHOT_TASKS:
        plan.few_shot_note = few_shot.skip_reason(task.name)
    else:
        plan.few_shot_note = "off (eval.few_shot is empty)"
    plan.forgetting_note = forgetting.skip_reason(task) or (None if config.eval.forgetting else "off (eval.forgetting: false)")
    plan.forgetting = plan.forgetting_note is None
    return plan


def score_extras(plan: ExtraPlan, task, model, tokenizer, config, packs: bool, base_predictions) -> dict:
    """One model's few-shot baselines (base only) and general-suite scores, as the plan asks."""
    extras = {}
    if plan.shots:
        extras["few_shot"] = few_shot_baselines(
            task, model, tokenizer, plan.few_shot_test, plan.shot_examples, plan.shots, config, base_predictions
        )
    if plan.forgetting:
        with status("Forgetting: general-ability suite"):
            extras["general"] = general_suite_scores(task, model, tokenizer, config.eval, packs)
    return extras


def extra_sections(plan: ExtraPlan, base_extras: dict, tuned_extras: dict, tuned_predictions, task, config) -> dict:
    """metrics.json's ``few_shot`` and ``forgetting`` entries (or why each was not measured)."""
    if plan.shots:
        rows = plan.few_shot_test
        scores = {**base_extras["few_shot"], "tuned": text_scores(task, tuned_predictions[: len(rows)], rows, config)}
        shots = [f"{e.source}:{e.line}" for e in plan.shot_examples]
        few_shot = {"scores": scores, "test_examples": len(rows), "shots": shots, "seed": config.data.seed}
    else:
        few_shot = {"skipped": plan.few_shot_note}
    if plan.forgetting:
        forgetting = forgetting_section(base_extras["general"], tuned_extras["general"], config.eval)
    else:
        forgetting = {"skipped": plan.forgetting_note}
    return {"few_shot": few_shot, "forgetting": forgetting}


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


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


def prediction_rows(test, base_predictions, tuned_predictions) -> list[dict]:
    return [
        {"source": f"{ex.source}:{ex.line}", "prompt": ex.input_text, "reference": ex.target_text, "base": b, "tuned": t}
        for ex, b, t in zip(test, base_predictions, tuned_predictions)
    ]


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
