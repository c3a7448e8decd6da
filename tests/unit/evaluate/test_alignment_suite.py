"""The alignment suite's arithmetic: mean rewards, the win rate with ties counting half, the section's shape."""

from __future__ import annotations

import pytest

from tuneloop.config import load_config
from tuneloop.evaluate import alignment
from tuneloop.runs.folder import RunDir


def test_the_section_holds_mean_rewards_the_win_rate_and_the_kl(tmp_path):
    plan = alignment.AlignmentPlan(RunDir(tmp_path), "runs/judge", [[{"role": "user", "content": f"q{i}"}] for i in range(4)])
    base = {"answers": ["a"] * 4, "rewards": [0.0, 1.0, 2.0, 3.0], "sampled": ["c"] * 4, "sampled_rewards": [0.0] * 4}
    tuned = {"answers": ["b"] * 4, "rewards": [1.0, 1.0, 1.0, 5.0], "sampled": ["d"] * 4, "sampled_rewards": [1.0, 2.0, 3.0, 4.0], "kl_to_base": 0.7}
    section = alignment.section(plan, base, tuned, load_config(None, {}))
    assert section["base"] == {"mean_reward": 1.5, "sampled_mean_reward": 0.0, "win_rate": 0.5, "kl_to_base": 0.0}
    assert section["tuned"] == {"mean_reward": 2.0, "sampled_mean_reward": 2.5, "win_rate": pytest.approx((1 + 0.5 + 0 + 1) / 4), "kl_to_base": 0.7}
    assert section["prompts"] == 4 and section["judge"] == "runs/judge"
    rows = alignment.answer_files(plan, base, tuned)["alignment.jsonl"]
    assert rows[3] == {
        "prompt": [{"role": "user", "content": "q3"}], "base": "a", "tuned": "b", "base_reward": 3.0, "tuned_reward": 5.0,
        "base_sampled": "c", "tuned_sampled": "d",
    }  # fmt: skip


def test_a_judge_that_is_not_a_run_is_refused_before_any_model_loads(tmp_path):
    from tuneloop.errors import ConfigError

    config = load_config(None, {"eval.judge_reward_run": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="eval.judge_reward_run: .* is not a tuneloop run folder"):
        alignment.plan(RunDir(tmp_path), config, None, [])
