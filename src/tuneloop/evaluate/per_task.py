"""Per-task scores of a multi-task run (``data.mix``): the test rows of each dataset on their own."""

from __future__ import annotations

from tuneloop.data.mixing import task_of
from tuneloop.evaluate.few_shot import text_scores


def per_task_scores(task, test: list, base_predictions: list[str], tuned_predictions: list[str], config) -> dict:
    """{"per_task": {"<task> base": {metric: value}, "<task> tuned": {...}, ...}} or {} for a single-dataset run.

    Scores are the task's generated-text metrics (no held-out loss, which the main table has for all rows).
    """
    names = list(dict.fromkeys(task_of(example) for example in test))
    if len(names) < 2 or None in names or not hasattr(task, "text_scores"):
        return {}
    section = {}
    for name in names:
        rows = [i for i, example in enumerate(test) if task_of(example) == name]
        examples = [test[i] for i in rows]
        for model, predictions in (("base", base_predictions), ("tuned", tuned_predictions)):
            section[f"{name} {model}"] = {"rows": len(rows), **text_scores(task, [predictions[i] for i in rows], examples, config)}
    return {"per_task": section}


def limit_rows(test: list, limit: int) -> list:
    """At most ``limit`` test rows (0: all); a multi-task split gives every task its turn, round-robin."""
    from itertools import chain, zip_longest

    if not limit:
        return test
    by_task: dict = {}
    for example in test:
        by_task.setdefault(task_of(example), []).append(example)
    if len(by_task) < 2:
        return test[:limit]
    interleaved = [e for e in chain.from_iterable(zip_longest(*by_task.values())) if e is not None]
    return interleaved[:limit]
