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
