"""How a policy trained against a reward run is judged on held-out prompts (``tuneloop eval``, for the
base and the tuned model alike): its greedy answer to each prompt, scored by the same reward run.

Shared by the tasks of this layer (grpo, ppo): the answers are the ``predictions`` the report shows,
and ``mean_reward`` is the headline metric.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tuneloop.rl.prompts import prompt_turns
from tuneloop.rl.reward_model import RewardScorer
from tuneloop.text.generate import generate_texts
from tuneloop.text.tokenize import render_prompt


def policy_answers(model, tokenizer, rows: list, max_new_tokens: int, batch_size: int) -> list[str]:
    """The model's greedy answer to each row's prompt turns, rendered with the chat template."""
    rendered = [render_prompt(tokenizer, prompt_turns(example)) for example in rows]
    was_training = model.training
    answers = generate_texts(model, tokenizer, rendered, max_new_tokens, batch_size)
    model.train(was_training)
    return answers


def score_policy(model, tokenizer, rows: list, config, reward_run: str, setting: str) -> dict:
    """``{"scores": {"mean_reward": ...}, "predictions": [answer]}``: the greedy answers to ``rows``
    (``eval.max_new_tokens``, ``eval.batch_size``) and their mean reward under ``reward_run``."""
    answers = policy_answers(model, tokenizer, rows, config.eval.max_new_tokens, config.eval.batch_size)
    scorer = reward_scorer(str(Path(reward_run).resolve()), setting, written_at(reward_run))
    scorer.model.to(model.device)
    rewards = scorer.scores([prompt_turns(example) for example in rows], answers)
    return {"scores": {"mean_reward": float(rewards.double().mean())}, "predictions": answers}


@functools.lru_cache(maxsize=1)
def reward_scorer(reward_run: str, setting: str, written: int = 0) -> RewardScorer:
    """The reward run's scorer, loaded once for the base and the tuned model of one evaluation
    (``written`` keys the cache, so a run folder trained again is loaded again)."""
    return RewardScorer.from_run(reward_run, setting=setting)


def written_at(run_dir: str) -> int:
    """When the run's config was written (0 where there is none: loading then fails with its own message)."""
    config = Path(run_dir) / "config.yaml"
    return config.stat().st_mtime_ns if config.is_file() else 0
