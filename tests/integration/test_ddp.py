"""Two training processes through accelerate give the loss curve of one process with the same global batch."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, toy_chat_rows, write_jsonl

ARGS = ("--format", "chat", "--r", "4", "--lr", "5e-3", "--tokens-per-batch", "512", "--pack-length", "128",
        "--early-stopping-patience", "0", "--max-steps", "4", "--eval-steps", "2", "--save-steps", "2")  # fmt: skip


def losses(run) -> tuple[list[float], float]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r], [r["eval_loss"] for r in records if "eval_loss" in r][-1]


@pytest.mark.timeout(300)
def test_two_processes_match_one_process(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows(80))
    common = ("--model", str(tiny_model_dir), "--data", str(data), *ARGS)
    assert run_cli("train", *common, "--out", str(tmp_path / "one")).exit_code == 0
    result = run_cli("train", *common, "--nproc", "2", "--out", str(tmp_path / "two"))
    assert result.exit_code == 0, result.output

    one_curve, one_eval = losses(tmp_path / "one")
    two_curve, two_eval = losses(tmp_path / "two")
    assert len(one_curve) == len(two_curve) == 4
    assert two_curve == pytest.approx(one_curve, abs=1e-4)
    assert two_eval == pytest.approx(one_eval, abs=1e-3)  # accelerate repeats a row to even out eval shards
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((tmp_path / "two" / "config.yaml").read_text().split("nproc: ")[1].split("\n")[0]) == 2

    # --resume of a finished 2-process run: the launcher picks checkpoint-2 and both processes train
    # steps 3-4 again from it, to the same weights, each step logged once
    weights = (tmp_path / "two" / "adapter" / "adapter_model.safetensors").read_bytes()
    resumed = run_cli("train", *common, "--nproc", "2", "--out", str(tmp_path / "two"), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from checkpoint-2" in resumed.output
    assert losses(tmp_path / "two")[0] == two_curve
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").read_bytes() == weights


def test_a_batch_the_processes_cannot_share_evenly_is_refused(monkeypatch):
    from tuneloop.errors import ConfigError
    from tuneloop.train.run import rows_per_process

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rows_per_process(4) == 2
    with pytest.raises(ConfigError, match="3 rows per step, which 2 processes cannot share"):
        rows_per_process(3)
