"""Classification end to end on tiny models: train, evaluate, and the errors that stop it early."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, toy_label_rows, write_jsonl
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits
from tuneloop.errors import DataError
from tuneloop.objectives.base import check_labels_shared


def classify_args(model_dir, data, out, method="lora", *extra):
    return (
        "train", "--task", "classify", "--model", str(model_dir), "--data", str(data), "--format", "label",
        "--method", method, *(("--r", "4") if method == "lora" else ()), "--lr", "5e-3", "--max-steps", "30", "--tokens-per-batch", "256",
        "--val-fraction", "0.2", "--test-fraction", "0.25", "--early-stopping-patience", "0", "--out", str(out), *extra,
    )  # fmt: skip


@pytest.mark.parametrize("method", ["lora", "full"])
def test_encoder_classifier_learns_and_reports_accuracy_and_confusion(tiny_bert_dir, tmp_path, method):
    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "run"
    result = run_cli(*classify_args(tiny_bert_dir, data, out, method))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "data.json").read_text())["labels"] == ["account", "billing", "bug"]

    result = run_cli("eval", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary"] == "accuracy"
    assert metrics["tuned"]["accuracy"] >= 0.9 > metrics["base"]["accuracy"]
    assert metrics["tuned"]["loss"] < metrics["base"]["loss"]
    matrix = metrics["confusion"]["tuned"]["matrix"]
    assert sum(map(sum, matrix)) == metrics["test_examples"] == 15
    assert metrics["confusion"]["tuned"]["labels"] == ["account", "billing", "bug"]


def test_decoder_classifier_trains_with_lora(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "run"
    result = run_cli(*classify_args(tiny_model_dir, data, out))
    assert result.exit_code == 0, result.output
    assert (out / "adapter" / "adapter_config.json").exists()
    evaluations = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "eval_loss" in r]
    assert evaluations and not any("eval_perplexity" in r for r in evaluations)  # meaningless for a classifier


def test_classifier_refuses_early_stopping_on_perplexity(tiny_bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    result = run_cli(*classify_args(tiny_bert_dir, data, tmp_path / "run", "lora", "--early-stopping-metric", "perplexity"))
    assert result.exit_code == 2
    assert "scores no 'perplexity'" in result.output and "loss" in result.output
    assert not (tmp_path / "run").exists()


def test_classification_needs_two_classes(tiny_bert_dir, tmp_path):
    rows = [{"text": f"ticket {i}", "label": "billing"} for i in range(20)]
    data = write_jsonl(tmp_path / "one.jsonl", rows)
    result = run_cli(*classify_args(tiny_bert_dir, data, tmp_path / "run"))
    assert result.exit_code == 2
    assert "at least two classes" in result.output and "'billing'" in result.output
    assert not (tmp_path / "run").exists()


def test_classification_refuses_a_chat_file_before_training(tiny_bert_dir, toy_chat_file, tmp_path):
    args = list(classify_args(tiny_bert_dir, toy_chat_file, tmp_path / "run"))
    args[args.index("label")] = "chat"
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "data.format 'chat' does not fit task 'classify'" in result.output
    assert not (tmp_path / "run").exists()


def test_a_test_label_never_seen_in_training_is_refused_with_its_row():
    def example(line, label):
        return Example("tickets.csv", line, text=f"text {line}", label=label)

    splits = Splits(train=[example(2, "billing"), example(3, "bug")], val=[example(4, "bug")], test=[example(5, "outage")])
    with pytest.raises(DataError, match=r"label 'outage' appears in the test split \(tickets.csv:5\) but never in the training split"):
        check_labels_shared(splits, ["billing", "bug", "outage"])
