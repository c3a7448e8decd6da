"""Two training processes through accelerate give the loss curve of one process with the same global batch
(in fp32: bf16 rounding depends on how the rows are split between processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import free_port, run_cli, toy_chat_rows, write_jsonl

ARGS = ("--format", "chat", "--precision", "fp32", "--r", "4", "--lr", "5e-3", "--tokens-per-batch", "512", "--pack-length", "128",
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


@pytest.mark.timeout(300)
def test_two_nodes_meeting_on_loopback_match_one_process(tiny_model_dir, tmp_path):
    """Two `tuneloop train` commands, one per node (--nnodes 2 --node-rank 0/1 --rdzv-endpoint): torchrun's
    rendezvous through accelerate; node 0 writes the run folder and the curve is the 1-process one."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows(80))
    common = ("--model", str(tiny_model_dir), "--data", str(data), *ARGS, "--threads", "1")
    assert run_cli("train", *common, "--out", str(tmp_path / "one")).exit_code == 0
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "tuneloop", "train", *common, "--nnodes", "2", "--node-rank", str(rank),
             "--rdzv-endpoint", endpoint, "--out", str(tmp_path / "nodes")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(output[-2000:] for output in outputs)
    assert "step 4/4" in outputs[0] and "step " not in outputs[1]  # node 1 trained as rank 1 of one run, not alone
    one_curve, one_eval = losses(tmp_path / "one")
    nodes_curve, nodes_eval = losses(tmp_path / "nodes")
    assert nodes_curve == pytest.approx(one_curve, abs=1e-4)
    assert nodes_eval == pytest.approx(one_eval, abs=1e-3)


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--nnodes", "2"), "the nodes need an rdzv_endpoint HOST:PORT of node 0"),
        (("--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:29500"), "node_rank 2 is out of range for nnodes 2"),
        (("--rdzv-endpoint", "h:29500"), "rdzv_endpoint is only for training on several nodes"),
        (("--nnodes", "2", "--rdzv-endpoint", "h"), "is not HOST:PORT"),
        (("--nproc", "2", "--accelerate-config", "configs/accelerate/fsdp.yaml"), "asks for FSDP, which accelerate runs only on GPUs"),
        (("--nproc", "2", "--accelerate-config", "configs/accelerate/deepspeed_zero2.yaml"), "asks for DEEPSPEED, which accelerate runs only on GPUs"),
    ],
)
def test_launch_settings_that_cannot_work_are_refused_before_any_work(flags, message, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])  # the configs/accelerate files
    data = write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows(8))
    result = run_cli("train", "--model", str(tmp_path / "no-model-needed"), "--data", str(data), *flags, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "run").exists()


def test_a_batch_the_processes_cannot_share_evenly_is_refused(monkeypatch):
    from tuneloop.errors import ConfigError
    from tuneloop.train.run import rows_per_process

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rows_per_process(4) == 2
    with pytest.raises(ConfigError, match="3 rows per step, which 2 processes cannot share"):
        rows_per_process(3)
