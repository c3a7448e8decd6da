"""Few-shot baselines: is fine-tuning better than showing the base model a few examples?

The base model gets k examples drawn (seeded) from the run's training split as prior chat turns,
then answers the same test rows the tuned model answers; both are scored with the task's own
text metrics. k = 0 is the base model as it is (its predictions from the main table are reused).
The shots are one nested draw: the 1-shot example is among the 3 shots, those among the 5.

>>> shots_for(config.eval, "sft", train_rows=432)  # doctest: +SKIP
[0, 1, 3, 5]

Registered as the ``few_shot`` suite (``SUITE``): its metrics.json entry is
{"scores": {"k=K": {metric: value}, ..., "tuned": {...}}, "test_examples", "shots", "seed"}.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tuneloop.errors import ConfigError
from tuneloop.evaluate.suite import ReportTable, Scoring, Suite
from tuneloop.evaluate.table_cells import fmt, rich_table
from tuneloop.progress import status
from tuneloop.runs.folder import RunDir
from tuneloop.text.generate import generate_texts
from tuneloop.text.metrics import load_metric_hook
from tuneloop.text.tokenize import render_prompt
from tuneloop.train.replay import REPLAY_SOURCE

DEFAULT_SHOTS = (0, 1, 3, 5)
FEW_SHOT_TASKS = ("sft", "qa")  # tasks whose rows are chat turns that can be shown as examples


def shots_for(eval_config, task_name: str, train_rows: int) -> list[int]:
    """The k values to evaluate; ConfigError when an explicitly asked k exceeds the training split.

    Without ``eval.few_shot`` the defaults apply as far as the training split allows.
    """
    if task_name not in FEW_SHOT_TASKS:
        return []
    if eval_config.few_shot is None:
        return [k for k in DEFAULT_SHOTS if k <= train_rows]
    too_many = [k for k in eval_config.few_shot if k > train_rows]
    if too_many:
        raise ConfigError(
            f"eval.few_shot: k={max(too_many)} needs {max(too_many)} training examples, but the training split "
            f"has {train_rows}; choose k <= {train_rows}"
        )
    return list(eval_config.few_shot)


def skip_reason(task_name: str) -> str:
    return f"not measured: task {task_name!r} has no chat examples to show (few-shot applies to {', '.join(FEW_SHOT_TASKS)})"


def company_rows(train: list) -> list:
    """Training rows drawn from the user's data (replayed general rows are no examples of the task)."""
    return [example for example in train if example.source != REPLAY_SOURCE]


def draw_shots(train: list, k_max: int, seed: int) -> list:
    """``k_max`` seeded training examples; the first k of them are the k-shot examples."""
    return random.Random(seed).sample(train, k_max) if k_max else []


def few_shot_messages(shots: list, example) -> list[dict]:
    """System turns of the test row, then each shot's turns, then the test row's own turns (no answer)."""
    system = [m for m in example.messages if m["role"] == "system"]
    shown = [m for shot in shots for m in shot.messages if m["role"] != "system"]
    asked = [m for m in example.messages[:-1] if m["role"] != "system"]
    return system + shown + asked


def few_shot_baselines(task, model, tokenizer, test: list, shots: list, ks: list[int], config, base_predictions: list[str]) -> dict:
    """{"k=K": {metric: value}} of the base model on ``test``, each k its own prompts."""
    results = {}
    for k in ks:
        if k == 0:
            predictions = base_predictions[: len(test)]
        else:
            with status(f"Few-shot baseline: the base model with {k} examples on {len(test)} test rows"):
                prompts = [render_prompt(tokenizer, few_shot_messages(shots[:k], example)) for example in test]
                predictions = generate_texts(model, tokenizer, prompts, config.eval.max_new_tokens, config.eval.batch_size)
        results[f"k={k}"] = text_scores(task, predictions, test, config)
    return results


def text_scores(task, predictions: list[str], test: list, config) -> dict:
    """The task's generated-text scores (and the user's metric hook), without held-out loss."""
    references = [example.target_text for example in test]
    scores = task.text_scores(predictions, references)
    if config.eval.metric_hook:
        scores.update(load_metric_hook(config.eval.metric_hook)(predictions, references))
    return scores


# --- the suite ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FewShotPlan:
    shots: list[int]  # the k values
    examples: list  # k_max seeded training examples; the first k of them are the k-shot examples
    test: list  # the test rows the baselines answer


def applies(task, config) -> str | None:
    if task.name not in FEW_SHOT_TASKS:
        return skip_reason(task.name)
    return "off (eval.few_shot is empty)" if config.eval.few_shot == [] else None


def plan_baselines(run: RunDir, config, task, test: list) -> FewShotPlan:
    """The k values (ConfigError for a k above the training split), the drawn shots and the rows they answer."""
    train = company_rows(run.split("train")) if run.has_split("train") else []
    shots = shots_for(config.eval, task.name, len(train))  # never empty where the suite applies: k=0 needs no row
    limit = config.eval.few_shot_max_examples
    return FewShotPlan(shots, draw_shots(train, max(shots), config.data.seed), test[:limit] if limit else test)


def score_baselines(plan: FewShotPlan, model, tokenizer, scoring: Scoring) -> dict:
    """The base model with each k; the tuned model as it answered the same rows in the main table."""
    if scoring.which == "tuned":
        return text_scores(scoring.task, scoring.predictions[: len(plan.test)], plan.test, scoring.config)
    return few_shot_baselines(scoring.task, model, tokenizer, plan.test, plan.examples, plan.shots, scoring.config, scoring.predictions)


def baselines_section(plan: FewShotPlan, base: dict, tuned: dict, config) -> dict:
    shots = [f"{e.source}:{e.line}" for e in plan.examples]
    return {"scores": {**base, "tuned": tuned}, "test_examples": len(plan.test), "shots": shots, "seed": config.data.seed}


def report_rows(section: dict, metrics: dict) -> ReportTable:
    """The base model with k training examples beside the tuned model, on the same rows."""
    scores = section["scores"]
    primary = metrics.get("primary")
    names = list(dict.fromkeys(n for inner in scores.values() for n in inner))
    names.sort(key=lambda n: n != primary)  # the headline metric first
    labels = {key: f"base, {key[2:]}-shot" for key in scores if key.startswith("k=")} | {"tuned": "tuned (fine-tuned, 0-shot)"}
    rows = [[labels.get(key, key), *((fmt(inner.get(n)), "num") for n in names)] for key, inner in scores.items()]
    header = ["model", *(f"{n} (primary)" if n == primary else n for n in names)]
    note = (
        f"The base model prompted with k examples from the training split (seeded draw, the same for every row; "
        f"k=0 is the base model of the main table) on the first {section['test_examples']} test rows, "
        "scored like the tuned model; the last row is the fine-tuned model on the same rows."
    )
    return ReportTable(note, header, rows)


def terminal_table(section: dict, metrics: dict):
    shown = report_rows(section, metrics)
    return rich_table(f"few-shot baselines ({section['test_examples']} test rows)", shown.header, shown.rows)


SUITE = Suite(
    name="few_shot",
    label="Few-shot baselines",
    heading="Few-shot baselines vs the fine-tuned model",
    applies=applies,
    plan=plan_baselines,
    score=score_baselines,
    section=baselines_section,
    report_rows=report_rows,
    table=terminal_table,
)
