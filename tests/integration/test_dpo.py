"""DPO end to end on the tiny Llama with LoRA: train on the generated support-reply preference pairs,
evaluate base vs tuned, and what it refuses before training."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from tuneloop.demo.preferences import write_preference_pairs


def dpo_args(model_dir, data, out, *extra):
    return (
        "train", "--task", "dpo", "--model", str(model_dir), "--data", str(data), "--format", "pairs",
        "--method", "lora", "--r", "4", "--lr", "5e-3", "--max-steps", "16", "--tokens-per-batch", "2048",
        "--val-fraction", "0.1", "--test-fraction", "0.25", "--early-stopping-patience", "0", "--threads", "1",
        "--no-forgetting", "--out", str(out), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_preference_pairs(tmp_path_factory.mktemp("dpo-data") / "pairs.jsonl", n=60, seed=0)


@pytest.fixture(scope="module")
def dpo_run(tiny_model_dir, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo") / "run"
    result = run_cli(*dpo_args(tiny_model_dir, pairs_file, out))
    assert result.exit_code == 0, result.output
    return out


def test_dpo_prefers_the_chosen_replies_more_than_the_base(dpo_run):
    assert (dpo_run / "adapter" / "adapter_config.json").exists()
    records = [json.loads(line) for line in (dpo_run / "log.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "eval_loss" in r]
    assert evaluations and not any("eval_perplexity" in r for r in evaluations)  # exp(DPO loss) is no perplexity

    result = run_cli("eval", str(dpo_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((dpo_run / "metrics.json").read_text())
    assert metrics["primary"] == "preference_accuracy" and metrics["test_examples"] == 15
    base, tuned = metrics["base"], metrics["tuned"]
    # The base is its own reference: every implicit reward is 0, and a tie counts as wrong.
    assert base["preference_accuracy"] == 0 and base["reward_margin"] == 0 and base["chosen_logratio"] == 0
    assert tuned["preference_accuracy"] >= 0.8 and tuned["reward_margin"] > 0 and tuned["loss"] < base["loss"]
    # The model's own ranking (log π(chosen) > log π(rejected)) moves more slowly: replies that drop the ticket
    # id are shorter, so likelier, and 16 steps lower both sides (0.6 -> 0.6 here); it must not get worse.
    assert tuned["logprob_accuracy"] >= base["logprob_accuracy"]
    first = json.loads((dpo_run / "predictions.jsonl").read_text().splitlines()[0])
    assert first["tuned"].startswith(("chosen preferred (implicit reward margin ", "rejected preferred (implicit reward margin "))
    assert "preference_accuracy" in (dpo_run / "report.md").read_text()


def test_a_method_without_an_adapter_to_switch_off_is_refused(tiny_model_dir, pairs_file, tmp_path):
    args = list(dpo_args(tiny_model_dir, pairs_file, tmp_path / "run"))
    args[args.index("lora")] = "full"
    args.remove("--r"), args.remove("4")
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "method 'full' has none to switch off (use one of lora, dora, rslora, ia3)" in result.output
    assert not (tmp_path / "run").exists()


def test_a_chat_file_is_refused_before_training(tiny_model_dir, toy_chat_file, tmp_path):
    args = list(dpo_args(tiny_model_dir, toy_chat_file, tmp_path / "run"))
    args[args.index("pairs")] = "chat"
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "data.format 'chat' does not fit task 'dpo'; it reads: pairs" in result.output
    assert not (tmp_path / "run").exists()


def test_beta_is_refused_for_another_task(tiny_model_dir, toy_chat_file, tmp_path):
    args = list(dpo_args(tiny_model_dir, toy_chat_file, tmp_path / "run", "--dpo-beta", "0.5"))
    args[args.index("pairs")], args[args.index("dpo")] = "chat", "sft"
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "dpo.beta set, but task is 'sft'" in result.output


def test_a_dpo_run_is_a_chat_model(dpo_run):
    result = run_cli("generate", str(dpo_run), "--prompt", "Write the reply to ticket NW-10001.", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output
