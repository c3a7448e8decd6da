"""A reward model end to end on the tiny Llama: train on preference pairs, evaluate, and what it refuses."""

from __future__ import annotations

import json

import pytest

from helpers import polite_over_rude_rows, reward_args, run_cli, write_jsonl


@pytest.fixture(scope="module")
def reward_run(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reward")
    data = write_jsonl(folder / "pairs.jsonl", polite_over_rude_rows())
    out = folder / "run"
    result = run_cli(*reward_args(tiny_model_dir, data, out))
    assert result.exit_code == 0, result.output
    return out


def test_reward_model_learns_the_preference_and_reports_pairwise_accuracy(reward_run):
    assert (reward_run / "adapter" / "adapter_config.json").exists()
    evaluations = [r for r in map(json.loads, (reward_run / "log.jsonl").read_text().splitlines()) if "eval_loss" in r]
    assert evaluations and not any("eval_perplexity" in r for r in evaluations)

    result = run_cli("eval", str(reward_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((reward_run / "metrics.json").read_text())
    assert metrics["primary"] == "pairwise_accuracy" and metrics["test_examples"] == 15
    base, tuned = metrics["base"], metrics["tuned"]
    assert tuned["pairwise_accuracy"] >= 0.9 and tuned["pairwise_accuracy"] > base["pairwise_accuracy"]
    assert tuned["reward_margin"] > base["reward_margin"] and tuned["loss"] < base["loss"]
    assert "does not generate text" in metrics["forgetting"]["skipped"] and "few-shot applies" in metrics["few_shot"]["skipped"]
    first = json.loads((reward_run / "predictions.jsonl").read_text().splitlines()[0])
    assert first["tuned"].startswith(("chosen preferred (margin ", "rejected preferred (margin "))
    assert "pairwise_accuracy" in (reward_run / "report.md").read_text()


@pytest.mark.parametrize("verb", [("generate", "--prompt", "hello"), ("chat",)])
def test_generate_and_chat_refuse_a_reward_run(reward_run, verb):
    result = run_cli(verb[0], str(reward_run), *verb[1:])
    assert result.exit_code == 2
    assert "task 'reward', which predicts a reward score per reply, not text" in result.output


def test_a_chat_file_is_refused_before_training(tiny_model_dir, toy_chat_file, tmp_path):
    args = list(reward_args(tiny_model_dir, toy_chat_file, tmp_path / "run"))
    args[args.index("pairs")] = "chat"
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "data.format 'chat' does not fit task 'reward'; it reads: pairs" in result.output
    assert not (tmp_path / "run").exists()


def test_fewer_than_two_training_pairs_are_refused(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", polite_over_rude_rows(n=3))
    result = run_cli(*reward_args(tiny_model_dir, data, tmp_path / "run", "--val-fraction", "0.34", "--test-fraction", "0.34"))
    assert result.exit_code == 2
    assert "training split holds 1 preference pair(s); a reward model needs at least 2" in result.output
    assert not (tmp_path / "run").exists()
