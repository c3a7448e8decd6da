"""End to end on a tiny local model: train -> adapter -> plain peft reload (kill and resume: tests/reliability)."""

from __future__ import annotations

import json
import re

import torch

from helpers import run_cli, tiny_config
from tuneloop.train.run import train


def test_train_writes_a_complete_run_and_learns(tiny_model_dir, toy_chat_file, tmp_path):
    out = train(tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=12, eval_steps=4))
    for name in ("config.yaml", "data.json", "log.jsonl", "train.json", "adapter/adapter_config.json", "splits/test.jsonl"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").iterdir())
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert evals[-1] < evals[0]
    manifest = json.loads((out / "data.json").read_text())
    assert len(manifest["dataset_hash"]) == 64


def test_saved_adapter_loads_with_plain_peft_and_same_logits(tiny_model_dir, toy_chat_file, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneloop.runs.models import load_tuned_model

    out = train(tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=4))
    ours, tokenizer = load_tuned_model(out)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(out / "adapter"))
    ids = tokenizer("what colour is the lime?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids).logits, plain.eval()(input_ids=ids).logits)
        with ours.disable_adapter():
            assert not torch.allclose(ours(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_cli_training_shows_progress_lines_not_log_records(tiny_model_dir, toy_chat_file, tmp_path):
    result = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--max-steps", "4", "--eval-steps", "2",
        "--tokens-per-batch", "256", "--pack-length", "128", "--early-stopping-patience", "0", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "{" not in result.output  # no raw log records ({'loss': ...} or JSON): those go to log.jsonl
    lines = [line for line in result.output.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines if " val - " in line][0] == "1/4"
    assert re.fullmatch(r"step 4/4  loss \d+\.\d{4}  val \d+\.\d{4}  \d+ tok/s  eta 0:00:00", lines[-1]), lines[-1]
