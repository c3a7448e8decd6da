"""End to end on a tiny local model: train -> adapter -> plain peft reload, and kill/resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers import run_cli, tiny_config
from tuneloop.train.run import train


def last_eval_loss(run: Path) -> float:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["eval_loss"] for r in records if "eval_loss" in r][-1]


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


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from transformers import TrainerCallback
    import tuneloop.train.run as run
    from tests_helper_config import config

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= 4:
                os.kill(os.getpid(), signal.SIGKILL)

    build = run.build_trainer
    def build_and_arm(*a, **k):
        trainer = build(*a, **k)
        trainer.add_callback(KillAfterSave())
        return trainer
    run.build_trainer = build_and_arm
    run.train(config())
    """
)


def test_sigkill_after_checkpoint_then_resume_matches_uninterrupted(tiny_model_dir, toy_chat_file, tmp_path):
    settings = dict(max_steps=10, eval_steps=2, save_steps=2)
    reference = train(tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "reference", **settings))
    killed = tmp_path / "killed"
    helper = tmp_path / "tests_helper_config.py"
    helper.write_text(
        "from pathlib import Path\n"
        "from helpers import tiny_config\n"
        f"def config():\n    return tiny_config(Path({str(tiny_model_dir)!r}), Path({str(toy_chat_file)!r}), Path({str(killed)!r}), **{settings!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])])}
    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == -9, result.stderr[-2000:]
    assert (killed / "checkpoints" / "checkpoint-4").is_dir() and not (killed / "adapter").exists()
    train(tiny_config(tiny_model_dir, toy_chat_file, killed, **settings), resume=True)
    assert (killed / "adapter").is_dir()
    assert abs(last_eval_loss(killed) - last_eval_loss(reference)) < 1e-4


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
