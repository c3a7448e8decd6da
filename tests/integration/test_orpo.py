"""ORPO end to end on the tiny Llama: train on polite-over-rude preference pairs through the CLI, evaluate
base vs tuned, train with full fine-tuning (no reference model, so no adapter needed), and what it refuses."""

from __future__ import annotations

import json

import pytest

from helpers import polite_over_rude_rows, reward_args, run_cli, write_jsonl


def orpo_args(model_dir, data, out, *extra):
    args = list(reward_args(model_dir, data, out, "--no-forgetting", *extra))
    args[args.index("reward")] = "orpo"
    return args


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("orpo-data") / "pairs.jsonl", polite_over_rude_rows())


@pytest.fixture(scope="module")
def orpo_run(tiny_model_dir, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("orpo") / "run"
    result = run_cli(*orpo_args(tiny_model_dir, pairs_file, out, "--orpo-beta", "0.5"))
    assert result.exit_code == 0, result.output
    return out


def test_orpo_learns_the_preference_and_eval_reports_it(orpo_run):
    assert (orpo_run / "adapter" / "adapter_config.json").exists()
    assert "beta: 0.5" in (orpo_run / "config.yaml").read_text()
    evaluations = [r for r in map(json.loads, (orpo_run / "log.jsonl").read_text().splitlines()) if "eval_loss" in r]
    assert evaluations and not any("eval_perplexity" in r for r in evaluations)  # NLL + odds term is no perplexity

    result = run_cli("eval", str(orpo_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((orpo_run / "metrics.json").read_text())
    assert metrics["primary"] == "preference_accuracy" and metrics["test_examples"] == 15
    base, tuned = metrics["base"], metrics["tuned"]
    assert tuned["preference_accuracy"] >= max(0.9, base["preference_accuracy"])  # 0.87 -> 1.0 here
    assert tuned["log_odds_ratio"] > base["log_odds_ratio"] + 0.2  # 0.05 -> 0.63 here
    assert tuned["chosen_nll"] < base["chosen_nll"] and tuned["loss"] < base["loss"]
    first = json.loads((orpo_run / "predictions.jsonl").read_text().splitlines()[0])
    assert first["tuned"].startswith(("chosen preferred (log-odds ratio ", "rejected preferred (log-odds ratio "))
    assert "preference_accuracy" in (orpo_run / "report.md").read_text()


def test_orpo_trains_with_full_fine_tuning(tiny_model_dir, pairs_file, tmp_path):
    args = orpo_args(tiny_model_dir, pairs_file, tmp_path / "run", "--max-steps", "4")
    args[args.index("lora")] = "full"
    args.remove("--r"), args.remove("4")
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "adapter").exists()
    assert json.loads((tmp_path / "run" / "train.json").read_text())["steps"] == 4


def test_beta_is_refused_for_another_task(tiny_model_dir, pairs_file, tmp_path):
    args = orpo_args(tiny_model_dir, pairs_file, tmp_path / "run", "--orpo-beta", "0.5")
    args[args.index("orpo")] = "dpo"
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "orpo.beta set, but task is 'dpo'" in result.output
    assert not (tmp_path / "run").exists()


def test_a_chat_file_is_refused_before_training(tiny_model_dir, toy_chat_file, tmp_path):
    args = orpo_args(tiny_model_dir, toy_chat_file, tmp_path / "run")
    args[args.index("pairs")] = "chat"
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "data.format 'chat' does not fit task 'orpo'; it reads: pairs" in result.output
