"""PPO end to end on the tiny Llama: a reward run, then a PPO run against it, evaluated; and what PPO refuses."""

from __future__ import annotations

import json

import pytest

from helpers import polite_over_rude_rows, reward_args, run_cli, write_jsonl


def ppo_args(model_dir, data, reward_run, out, *extra):
    return (
        "train", "--task", "ppo", "--model", str(model_dir), "--data", str(data), "--format", "pairs",
        "--ppo-reward-run", str(reward_run), "--method", "lora", "--r", "4", "--lr", "5e-3", "--max-steps", "3",
        "--ppo-rollouts-per-step", "4", "--ppo-minibatch-size", "2", "--ppo-max-new-tokens", "8", "--ppo-epochs-per-rollout", "2",
        "--val-fraction", "0.2", "--test-fraction", "0.25", "--threads", "1", "--out", str(out), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("ppo-data") / "pairs.jsonl", polite_over_rude_rows(n=40))


@pytest.fixture(scope="module")
def reward_run(tiny_model_dir, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo-reward") / "run"
    result = run_cli(*reward_args(tiny_model_dir, pairs_file, out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def ppo_run(tiny_model_dir, pairs_file, reward_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo") / "run"
    result = run_cli(*ppo_args(tiny_model_dir, pairs_file, reward_run, out))
    assert result.exit_code == 0, result.output
    return out


def test_ppo_trains_logs_each_step_and_is_evaluated_by_its_reward_model(ppo_run):
    assert (ppo_run / "adapter" / "adapter_config.json").exists()
    steps = [json.loads(line) for line in (ppo_run / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3]
    for record in steps:
        assert {"reward", "kl", "policy_loss", "value_loss", "clip_fraction", "approx_kl", "kl_coef", "tokens_per_s"} <= set(record)
        assert 0 <= record["clip_fraction"] <= 1 and record["answer_tokens"] > 0
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the first answers come from the policy = the reference
    summary = json.loads((ppo_run / "train.json").read_text())
    assert summary["steps"] == 3 and summary["real_tokens"] > 0 and summary["final_reward"] == steps[-1]["reward"]

    result = run_cli("eval", str(ppo_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((ppo_run / "metrics.json").read_text())
    assert metrics["primary"] == "mean_reward"
    assert {"mean_reward"} <= set(metrics["base"]) and {"mean_reward"} <= set(metrics["tuned"])


def test_ppo_without_a_reward_model_is_refused(tiny_model_dir, pairs_file, tmp_path):
    args = [a for a in ppo_args(tiny_model_dir, pairs_file, "x", tmp_path / "run") if a not in ("--ppo-reward-run", "x")]
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "task ppo needs a reward model" in result.output and "ppo.reward_run" in result.output
    assert not (tmp_path / "run").exists()


def test_a_policy_run_given_as_the_reward_model_is_refused(tiny_model_dir, pairs_file, ppo_run, tmp_path):
    result = run_cli(*ppo_args(tiny_model_dir, pairs_file, ppo_run, tmp_path / "run"))
    assert result.exit_code == 2
    assert f"ppo.reward_run: {ppo_run} is a run of task 'ppo', not a reward model" in result.output
    assert not (tmp_path / "run").exists()


def test_a_ppo_setting_under_another_task_is_refused(tiny_model_dir, pairs_file, tmp_path):
    result = run_cli(*reward_args(tiny_model_dir, pairs_file, tmp_path / "run", "--ppo-clip-range", "0.1"))
    assert result.exit_code == 2
    assert "ppo.clip_range set, but task is 'reward'" in result.output


def test_ppo_refuses_a_method_without_an_adapter_to_switch_off(tiny_model_dir, pairs_file, reward_run, tmp_path):
    args = list(ppo_args(tiny_model_dir, pairs_file, reward_run, tmp_path / "run"))
    args[args.index("lora")] = "full"
    args[args.index("--r") : args.index("--r") + 2] = []
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "task ppo takes its reference model from the policy with its adapter switched off" in result.output


def test_a_judge_reward_run_scores_base_and_tuned_answers_in_eval(ppo_run, reward_run):
    result = run_cli("eval", str(ppo_run), "--judge-reward-run", str(reward_run))
    assert result.exit_code == 0, result.output
    section = json.loads((ppo_run / "metrics.json").read_text())["alignment"]
    assert section["prompts"] == 10 and section["judge"] == str(reward_run)
    assert section["base"]["win_rate"] == 0.5 and section["base"]["kl_to_base"] == 0.0
    assert 0.0 <= section["tuned"]["win_rate"] <= 1.0 and section["tuned"]["kl_to_base"] != 0.0
    rows = [json.loads(line) for line in (ppo_run / "alignment.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and {"prompt", "base", "tuned", "base_reward", "tuned_reward", "base_sampled", "tuned_sampled"} <= set(rows[0])
    assert section["base"]["sampled_mean_reward"] != section["base"]["mean_reward"]
    assert sum(r["base_reward"] for r in rows) / 10 == pytest.approx(section["base"]["mean_reward"], rel=1e-5)
    assert "Alignment: answers judged by a reward model" in (ppo_run / "report.md").read_text()


def test_a_reward_run_is_not_continued_as_a_policy(tiny_model_dir, pairs_file, reward_run, tmp_path):
    args = [
        "train", "--task", "dpo", "--model", str(tiny_model_dir), "--data", str(pairs_file), "--format", "pairs",
        "--method", "lora", "--init-from", str(reward_run), "--max-steps", "1", "--threads", "1", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.exit_code == 2
    assert f"method.init_from: {reward_run} is a run of task 'reward', an adapter on a model with a classification or reward head" in result.output
    assert "task 'dpo' continues an adapter on a chat (causal) language model" in result.output
    assert not (tmp_path / "run").exists()


def test_a_policy_run_is_not_a_judge(ppo_run):
    result = run_cli("eval", str(ppo_run), "--judge-reward-run", str(ppo_run))
    assert result.exit_code == 2
    assert f"eval.judge_reward_run: {ppo_run} is a run of task 'ppo', not a reward model" in result.output
