"""The headline metric's name, known before any model is scored (tune.metric auto optimises it)."""

import json

import pytest

from tuneloop.objectives import get_task

PLAIN = ["red", "a yellow fruit"]
JSON = [json.dumps({"category": "billing"}), json.dumps({"category": "bug"})]


@pytest.mark.parametrize(
    ("task", "references", "requested", "expected"),
    [
        ("classify", ["billing", "bug"], "auto", "accuracy"),
        ("qa", PLAIN, "auto", "f1"),
        ("sft", JSON, "auto", "json_field_accuracy"),
        ("sft", PLAIN, "auto", "rouge_l"),
        ("sft", JSON, "exact_match", "exact_match"),
        ("cpt", PLAIN, "auto", "perplexity"),
        ("seq2seq", PLAIN, "auto", "chrf"),
    ],
)
def test_primary_metric_follows_eval_primary_then_the_task(task, references, requested, expected):
    assert get_task(task).primary_metric(requested, references) == expected
