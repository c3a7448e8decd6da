"""Text metrics on hand-made cases with known values."""

from __future__ import annotations

import pytest

from tuneloop.errors import TuneloopError
from tuneloop.text.metrics import (
    choose_primary,
    compute_text_metrics,
    exact_match,
    json_field_accuracy,
    json_valid,
    load_metric_hook,
    rouge_l,
    token_f1,
)

REF = '{"category": "billing", "priority": "high", "product": "Vault", "needs_human": true}'


def test_exact_match_ignores_surrounding_and_repeated_whitespace():
    assert exact_match("  the cat\n sat ", "the cat sat") == 1.0
    assert exact_match("The cat sat", "the cat sat") == 0.0


def test_token_f1_squad_style():
    assert token_f1("The Cat, sat!", "cat sat") == 1.0  # case, punctuation and articles ignored
    # pred tokens {cat, sat, down}, ref {cat, sat}: precision 2/3, recall 1 -> 0.8
    assert token_f1("cat sat down", "cat sat") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("", "cat") == 0.0


def test_rouge_l_f_measure():
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # the LCS is the whole 4-token prediction: P = 1, R = 4/6 -> F = 0.8
    assert rouge_l("the cat the mat", "the cat sat on the mat") == pytest.approx(0.8)
    assert rouge_l("dog", "cat") == 0.0


def test_json_field_accuracy_exact_and_partial():
    assert json_field_accuracy(REF, REF) == 1.0
    pred = '{"category": "billing", "priority": "low", "product": "vault", "needs_human": false}'
    assert json_field_accuracy(pred, REF) == pytest.approx(0.5)  # product matches case-insensitively


def test_json_field_accuracy_bool_equals_string_and_numbers_normalise():
    pred = '{"category": "Billing", "priority": " high ", "product": "Vault", "needs_human": "true"}'
    assert json_field_accuracy(pred, REF) == 1.0
    assert json_field_accuracy('{"n": "3.0"}', '{"n": 3}') == 1.0
    assert json_field_accuracy('{"n": null}', '{"n": "null"}') == 1.0


def test_json_field_accuracy_reads_fenced_or_embedded_objects():
    fenced = 'Sure! Here is the triage:\n```json\n{"category": "billing", "priority": "high"}\n```\nAnything else?'
    assert json_field_accuracy(fenced, REF) == pytest.approx(0.5)
    assert json_field_accuracy('{"x": 1} then {"category": "billing"}', REF) == 0.0  # the first object counts
    nested = 'answer: {"category": "billing", "meta": {"a": "}"}}'
    assert json_field_accuracy(nested, REF) == pytest.approx(0.25)


def test_json_field_accuracy_unparseable_and_missing_keys():
    assert json_field_accuracy('{"category": "billing", "priority": ', REF) == 0.0
    assert json_field_accuracy("billing, high, Vault, yes", REF) == 0.0
    assert json_field_accuracy("[1, 2]", REF) == 0.0
    assert json_field_accuracy("{}", REF) == 0.0
    assert json_field_accuracy(REF, "not json") == 0.0


def test_json_valid():
    assert json_valid(REF)
    assert json_valid("```json\n{\"a\": 1}\n```")
    assert not json_valid('{"a": ')
    assert not json_valid("[1, 2]")
    assert not json_valid("")


def test_compute_text_metrics_on_json_references():
    preds = [REF, "```json\n" + REF.replace("high", "low") + "\n```", "no idea"]
    scores = compute_text_metrics(preds, [REF, REF, REF])
    assert set(scores) == {"exact_match", "token_f1", "rouge_l", "json_field_accuracy", "json_valid"}
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["json_field_accuracy"] == pytest.approx((1 + 0.75 + 0) / 3)
    assert scores["json_valid"] == pytest.approx(2 / 3)


def test_compute_text_metrics_on_plain_text_has_no_json_metrics():
    scores = compute_text_metrics(["a b", "c"], ["a b", "d"])
    assert set(scores) == {"exact_match", "token_f1", "rouge_l"}
    assert scores["exact_match"] == 0.5
    assert compute_text_metrics([], []) == {}
    with pytest.raises(ValueError):
        compute_text_metrics(["a"], [])


def test_choose_primary():
    assert choose_primary({"rouge_l": 0.1, "json_field_accuracy": 0.2}) == "json_field_accuracy"
    assert choose_primary({"exact_match": 0.1, "rouge_l": 0.2}, "auto") == "rouge_l"
    assert choose_primary({"exact_match": 0.1, "rouge_l": 0.2}, "exact_match") == "exact_match"
    with pytest.raises(TuneloopError, match="bleu"):
        choose_primary({"rouge_l": 0.2}, "bleu")


def test_load_metric_hook_from_file(tmp_path):
    hook_file = tmp_path / "my_metrics.py"
    hook_file.write_text(
        "def share_long(predictions, references):\n"
        "    return {'long': sum(len(p) > 3 for p in predictions) / len(predictions)}\n"
        "def broken(predictions, references):\n"
        "    return 0.5\n"
        "NOT_CALLABLE = 3\n"
    )
    hook = load_metric_hook(f"{hook_file}:share_long")
    assert hook(["abcd", "ab"], ["x", "y"]) == {"long": 0.5}
    with pytest.raises(TuneloopError, match="expected dict"):
        load_metric_hook(f"{hook_file}:broken")(["a"], ["b"])
    with pytest.raises(TuneloopError, match="no function 'missing'"):
        load_metric_hook(f"{hook_file}:missing")
    with pytest.raises(TuneloopError, match="not callable"):
        load_metric_hook(f"{hook_file}:NOT_CALLABLE")
    with pytest.raises(TuneloopError, match="file not found"):
        load_metric_hook(f"{tmp_path / 'nope.py'}:f")


def test_load_metric_hook_from_module():
    hook = load_metric_hook("tuneloop.text.metrics:compute_text_metrics")
    assert hook(["a"], ["a"])["exact_match"] == 1.0
    with pytest.raises(TuneloopError, match="no module named 'no_such_module_xyz'"):
        load_metric_hook("no_such_module_xyz:f")
    with pytest.raises(TuneloopError, match="no function"):
        load_metric_hook("tuneloop.text.metrics:nope")
    with pytest.raises(TuneloopError, match="module:function"):
        load_metric_hook("just_a_name")
