"""Few-shot baselines beside the tuned model in `tuneloop eval`, and the k that is too large."""

from __future__ import annotations

import json

from helpers import run_cli


def train_args(model_dir, data, out, *extra):
    return (
        "train", "--model", str(model_dir), "--data", str(data), "--format", "chat", "--r", "4", "--max-steps", "3",
        "--tokens-per-batch", "256", "--pack-length", "128", "--val-fraction", "0.2", "--test-fraction", "0.2",
        "--early-stopping-patience", "0", "--max-new-tokens", "6", "--no-forgetting", "--out", str(out), *extra,
    )  # fmt: skip


def test_eval_scores_the_base_model_with_k_examples_beside_the_tuned_model(tiny_model_dir, toy_chat_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*train_args(tiny_model_dir, toy_chat_file, out, "--few-shot", "0,1,3", "--few-shot-max-examples", "5")).exit_code == 0
    result = run_cli("eval", str(out))
    assert result.exit_code == 0, result.output
    few_shot = json.loads((out / "metrics.json").read_text())["few_shot"]
    assert list(few_shot["scores"]) == ["k=0", "k=1", "k=3", "tuned"]
    assert set(few_shot["scores"]["k=3"]) == {"exact_match", "token_f1", "rouge_l"}
    assert few_shot["test_examples"] == 5 and len(few_shot["shots"]) == 3
    train_lines = {f"{r['source']}:{r['line']}" for r in map(json.loads, (out / "splits" / "train.jsonl").read_text().splitlines())}
    assert set(few_shot["shots"]) <= train_lines  # drawn from the training split, never from test
    report = (out / "report.md").read_text()
    assert "## Few-shot baselines vs the fine-tuned model" in report
    assert "| base, 3-shot |" in report and "| tuned (fine-tuned, 0-shot) |" in report
    assert "few-shot baselines" in result.output


def test_k_larger_than_the_training_split_is_a_clear_error_before_any_model_loads(tiny_model_dir, toy_chat_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*train_args(tiny_model_dir, toy_chat_file, out, "--few-shot", "0,500")).exit_code == 0
    result = run_cli("eval", str(out))
    assert result.exit_code == 2
    train_rows = len((out / "splits" / "train.jsonl").read_text().splitlines())
    assert f"eval.few_shot: k=500 needs 500 training examples, but the training split has {train_rows}" in result.output
    for name in ("metrics.json", "report.md", "report.html", "predictions.jsonl", "forgetting.jsonl"):
        assert not (out / name).exists(), name
