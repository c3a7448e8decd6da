"""Your own evaluation data: a golden test file used as the run's test split (--test-data), and any
file scored base vs tuned after training (tuneloop eval RUN --data FILE)."""

from __future__ import annotations

import hashlib
import json

from helpers import run_cli, toy_chat_rows, write_jsonl


def test_train_with_a_golden_test_file_records_and_uses_it_as_is(tiny_model_dir, toy_chat_file, tmp_path):
    golden_rows = [
        {"messages": [{"role": "user", "content": f"Golden {i}: what colour is the lime?"}, {"role": "assistant", "content": "green"}]}
        for i in range(5)
    ] + [toy_chat_rows()[3]]  # the 4th training row again: it must leave training, not leak
    golden = write_jsonl(tmp_path / "golden.jsonl", golden_rows)
    out = tmp_path / "run"
    result = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--test-data", str(golden),
        "--max-steps", "2", "--tokens-per-batch", "256", "--pack-length", "128", "--early-stopping-patience", "0", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "data.json").read_text())
    assert manifest["given_splits"]["test"]["sha256"] == hashlib.sha256(golden.read_bytes()).hexdigest()
    assert manifest["split_sizes"]["test"] == 6 and manifest["split_sizes"]["train"] + manifest["split_sizes"]["val"] == 39
    assert manifest["dropped_rows"][0]["reason"] == f"leaks into the test split: same input as {golden}:6 (data.test_path)"
    test = [json.loads(line) for line in (out / "splits" / "test.jsonl").read_text().splitlines()]
    assert [row["messages"] for row in test] == [row["messages"] for row in golden_rows]


def trained_run(tiny_model_dir, toy_chat_file, out):
    result = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--max-steps", "2", "--tokens-per-batch", "256",
        "--pack-length", "128", "--early-stopping-patience", "0", "--max-new-tokens", "4", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_eval_scores_base_and_tuned_on_any_file_beside_the_runs_own_results(tiny_model_dir, toy_chat_file, tmp_path):
    run = trained_run(tiny_model_dir, toy_chat_file, tmp_path / "run")
    (run / "metrics.json").write_text("the run's own results\n")
    (run / "report.md").write_text("the run's own report\n")
    # another file in another format, read with flags: CSV question/answer columns, one bad row
    other = tmp_path / "golden set.csv"
    other.write_text('question,answer\n"What colour is the plum?",purple\n"What colour is the lime?",green\n"",empty\n')
    result = run_cli("eval", str(run), "--data", str(other), "--format", "prompt_completion", "--columns", "prompt=question,completion=answer")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "eval-golden-set.json").read_text())
    assert metrics["test_examples"] == 2 and metrics["primary"] == "rouge_l"
    assert {"exact_match", "rouge_l", "loss"} <= set(metrics["base"]) & set(metrics["tuned"])
    assert metrics["data"] == {"files": str(other), "format": "prompt_completion", "rows_read": 3, "rows_kept": 2, "rows_dropped": 1, "rows_scored": 2}
    assert metrics["data_files"][0]["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert f"{other}:4: question: empty" in result.output
    predictions = [json.loads(line) for line in (run / "eval-golden-set.predictions.jsonl").read_text().splitlines()]
    assert [p["reference"] for p in predictions] == ["purple", "green"]
    assert (run / "eval-golden-set.md").is_file() and (run / "eval-golden-set.html").is_file()
    assert (run / "metrics.json").read_text() == "the run's own results\n"
    assert (run / "report.md").read_text() == "the run's own report\n"

    # a file in the run's own format needs no flags
    same_format = write_jsonl(tmp_path / "more.jsonl", toy_chat_rows(6))
    result = run_cli("eval", str(run), "--data", str(same_format), "--name", "more-tickets")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "eval-more-tickets.json").read_text())["test_examples"] == 6


def test_eval_reading_flags_need_a_data_file(tiny_model_dir, toy_chat_file, tmp_path):
    result = run_cli("eval", str(tmp_path), "--format", "label")
    assert result.exit_code == 2 and "describe a --data file" in result.output
