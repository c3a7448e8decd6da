"""GRPO end to end on the tiny Llama with LoRA: a reward run trained on preference pairs, then a few GRPO
steps through TRL's GRPOTrainer against it, `tuneloop eval` scoring base and tuned by the reward run, and
what is refused before anything is written."""

from __future__ import annotations

import json
import random

import pytest

from helpers import run_cli, write_jsonl

ISSUES = ["the dashboard is down", "my invoice is wrong", "login fails", "exports time out", "alerts never arrive"]
POLITE = ["Thank you for writing in, we are on it.", "Thanks for your patience, a fix is coming.", "Sorry for the trouble, we will help."]
RUDE = ["Not our problem.", "Read the docs yourself.", "Stop writing to us."]


def polite_over_rude_rows(n: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"prompt": f"Ticket {i}: {rng.choice(ISSUES)}", "chosen": rng.choice(POLITE), "rejected": rng.choice(RUDE)}
        for i in range(n)
    ]


def grpo_args(model_dir, data, reward_run, out, *extra):
    return (
        "train", "--task", "grpo", "--model", str(model_dir), "--data", str(data), "--format", "pairs",
        "--method", "lora", "--r", "4", "--lr", "5e-3", "--max-steps", "3", "--grpo-reward-run", str(reward_run),
        "--grpo-group-size", "4", "--grpo-prompts-per-step", "2", "--grpo-max-new-tokens", "8", "--grpo-beta", "0.04",
        "--val-fraction", "0.1", "--test-fraction", "0.2", "--threads", "1", "--no-forgetting", "--out", str(out), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("grpo-data") / "pairs.jsonl", polite_over_rude_rows())


@pytest.fixture(scope="module")
def reward_run(tiny_model_dir, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo-reward") / "run"
    result = run_cli(
        "train", "--task", "reward", "--model", str(tiny_model_dir), "--data", str(pairs_file), "--format", "pairs",
        "--method", "lora", "--r", "4", "--lr", "5e-3", "--max-steps", "12", "--tokens-per-batch", "512",
        "--val-fraction", "0.1", "--test-fraction", "0.2", "--early-stopping-patience", "0", "--threads", "1", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def grpo_run(tiny_model_dir, pairs_file, reward_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo") / "run"
    result = run_cli(*grpo_args(tiny_model_dir, pairs_file, reward_run, out))
    assert result.exit_code == 0, result.output
    return out


def test_grpo_trains_against_the_reward_run_and_eval_scores_both_models_by_it(grpo_run):
    assert (grpo_run / "adapter" / "adapter_config.json").exists() and not (grpo_run / "adapter" / "ref").exists()
    records = [json.loads(line) for line in (grpo_run / "log.jsonl").read_text().splitlines()]
    steps = [record for record in records if "reward" in record]
    assert [record["step"] for record in steps] == [1, 2, 3]
    assert all("kl" in record and "reward_std" in record and record["real_tokens"] > 0 for record in steps)
    summary = json.loads((grpo_run / "train.json").read_text())
    assert summary["steps"] == 3 and summary["real_tokens"] == steps[-1]["real_tokens"]
    assert summary["final_mean_reward"] == steps[-1]["reward"] and summary["trainable_parameters"] > 0

    result = run_cli("eval", str(grpo_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((grpo_run / "metrics.json").read_text())
    assert metrics["primary"] == "mean_reward" and metrics["test_examples"] == 8
    assert set(metrics["base"]) == set(metrics["tuned"]) == {"mean_reward"}
    assert "few-shot applies" in metrics["few_shot"]["skipped"]
    rows = [json.loads(line) for line in (grpo_run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(isinstance(row["tuned"], str) and isinstance(row["base"], str) for row in rows)
    assert "mean_reward" in (grpo_run / "report.md").read_text()


def test_a_reward_run_of_another_task_is_refused_before_anything_is_written(tiny_model_dir, pairs_file, toy_chat_file, tmp_path):
    sft_run = tmp_path / "sft"
    result = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--max-steps", "1", "--threads", "1",
        "--early-stopping-patience", "0", "--out", str(sft_run),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run_cli(*grpo_args(tiny_model_dir, pairs_file, sft_run, tmp_path / "run"))
    assert result.exit_code == 2
    assert f"grpo.reward_run: {sft_run} is a run of task 'sft', not a reward model" in result.output
    assert not (tmp_path / "run").exists()


def test_a_missing_reward_run_is_refused(tiny_model_dir, pairs_file, tmp_path):
    args = list(grpo_args(tiny_model_dir, pairs_file, "x", tmp_path / "run"))
    del args[args.index("--grpo-reward-run") : args.index("--grpo-reward-run") + 2]
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "task grpo needs a reward model to score the answers it samples: set grpo.reward_run" in result.output
    assert not (tmp_path / "run").exists()


def test_resume_is_refused(grpo_run, tiny_model_dir, pairs_file, reward_run):
    result = run_cli(*grpo_args(tiny_model_dir, pairs_file, reward_run, grpo_run, "--resume"))
    assert result.exit_code == 2
    assert "--resume: task grpo trains in a loop of its own" in result.output
