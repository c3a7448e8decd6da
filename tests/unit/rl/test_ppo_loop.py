"""The PPO loop on the tiny Llama against a reward the test states (the share of digits in the answer):
one step's updates raise the log-probability of the answers that scored above the others, the loop logs
every step, and its small rules hold. (A random model has no notion of "digit" to generalise from, so
learning the reward across steps is measured on a real model, in bench/alignment.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from tuneloop.config import build_config
from tuneloop.methods import apply_method
from tuneloop.rl import ppo
from tuneloop.rl.rollouts import sample_rollouts, token_logprobs_and_values
from tuneloop.runs.folder import RunDir


class DigitsScorer:
    """The share of the answer's characters that are digits."""

    def scores(self, prompts, answers):
        return torch.tensor([sum(c.isdigit() for c in answer) / max(len(answer), 1) for answer in answers])


@pytest.fixture
def tiny_ppo(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setattr(ppo.RewardScorer, "from_run", classmethod(lambda cls, *a, **k: DigitsScorer()))
    config = build_config({
        "task": "ppo", "model": {"name": str(tiny_model_dir)}, "data": {"format": "pairs"},
        "method": {"name": "lora", "r": 8}, "train": {"learning_rate": 1e-2, "max_steps": 3, "seed": 0},
        "ppo": {"reward_run": "unused", "rollouts_per_step": 16, "minibatch_size": 4, "max_new_tokens": 8, "kl_coef": 0.0},
    })  # fmt: skip
    torch.manual_seed(0)
    model = apply_method(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config.method)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return ppo.PpoLoop(model, tokenizer, config, RunDir(tmp_path))


def prompts(n: int) -> list:
    return [ppo.TokenizedPrompt(tuple(range(5 + i, 12 + i)), ({"role": "user", "content": f"q{i}"},)) for i in range(n)]


def test_a_steps_updates_raise_the_answers_that_scored_higher(tiny_ppo):
    model = tiny_ppo.model.eval()
    torch.manual_seed(1)
    rollouts = sample_rollouts(model, tiny_ppo.tokenizer, [list(p.ids) for p in prompts(16)], 8, 1.0)
    scores = DigitsScorer().scores(None, rollouts.answers)
    with torch.no_grad():
        before, values = token_logprobs_and_values(model, tiny_ppo.value_head, rollouts)
    from tuneloop.losses.ppo import gae, kl_penalised_rewards, masked_whiten

    mask = rollouts.mask.float()
    advantages, returns = gae(kl_penalised_rewards(scores, before, before, mask, 0.0), values, mask, 1.0, 1.0)
    record = tiny_ppo.update(rollouts, before, values, masked_whiten(advantages, mask), returns)

    with torch.no_grad():
        after, _ = token_logprobs_and_values(model, None, rollouts)
    gained = ((after - before) * mask).sum(dim=1)
    ranked = scores.argsort(descending=True)
    assert gained[ranked[:5]].mean() > gained[ranked[-5:]].mean() + 0.1, (scores.tolist(), gained.tolist())
    assert record["passes"] >= 1 and record["policy_loss"] < 0


def test_each_step_is_logged_and_the_first_answers_are_the_references_own(tiny_ppo, tmp_path):
    summary = tiny_ppo.run(prompts(8))
    steps = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert summary["steps"] == len(steps) == 3 and summary["real_tokens"] == steps[-1]["real_tokens"] > 0
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # LoRA starts as the identity: policy = reference
    assert steps[-1]["kl"] != 0.0
    assert {"reward", "reward_std", "policy_loss", "value_loss", "clip_fraction", "approx_kl", "passes", "tokens_per_s"} <= set(steps[0])


def test_ppo_steps_follow_max_steps_or_epochs_over_the_prompts():
    class Train:
        max_steps, epochs = -1, 2.0

    assert ppo.ppo_steps(Train, prompts=30, per_step=8) == 8
    Train.max_steps = 5
    assert ppo.ppo_steps(Train, prompts=30, per_step=8) == 5


def test_prompt_batches_take_every_prompt_once_per_pass_in_a_seeded_order():
    batches = ppo.prompt_batches(list(range(10)), per_step=4, seed=3)
    first_pass = [next(batches) for _ in range(5)]
    flat = [p for batch in first_pass for p in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert first_pass == [next(ppo.prompt_batches(list(range(10)), 4, 3)) for _ in range(1)] + first_pass[1:]


@pytest.mark.parametrize(
    ("kl", "expected"),
    [(6.0, 0.11), (3.0, 0.1), (1.5, 0.095), (0.0, 0.09), (100.0, 0.11)],
)
def test_the_adaptive_kl_controller_moves_the_coefficient_toward_the_target(kl, expected):
    assert ppo.adapted_kl_coef(0.1, kl, target=3.0) == pytest.approx(expected)
    assert ppo.adapted_kl_coef(0.1, kl, target=None) == 0.1
