"""How a policy (a chat model tuned against a reward model) is judged on held-out prompts: its greedy
answers, scored by a reward run."""

from __future__ import annotations

from tuneloop.text.generate import generate_texts
from tuneloop.text.tokenize import render_prompt


def policy_scores(model, tokenizer, prompts: list[list[dict]], reward, eval_config) -> dict:
    """``{"scores": {"mean_reward": ...}, "predictions": [answer]}``: greedy answers of ``model`` to ``prompts``
    (chat turns), each scored by ``reward`` (a :class:`~tuneloop.rl.reward_model.RewardScorer`)."""
    rendered = [render_prompt(tokenizer, turns) for turns in prompts]
    answers = generate_texts(model, tokenizer, rendered, eval_config.max_new_tokens, eval_config.batch_size)
    rewards = reward.scores(prompts, answers)
    return {"scores": {"mean_reward": float(rewards.mean())}, "predictions": answers, "rewards": rewards.tolist()}
