"""Proximal policy optimisation against a reward model: RLHF as the guide describes it.

Each PPO step (Ziegler et al., 2019; Stiennon et al., 2020; Ouyang et al., 2022):

1. **Rollouts**: ``ppo.rollouts_per_step`` training prompts, each answered by the policy with a
   sampled answer (:mod:`tuneloop.rl.rollouts`).
2. **Scoring**: the reward run (``ppo.reward_run``) scores each answer; the reference (the policy with
   its adapter switched off: no second copy of the weights) gives each answer token's log-probability,
   and each token is charged ``kl_coef · (log π − log π_ref)``; the reward model's score is paid on the
   answer's last token (:func:`tuneloop.losses.ppo.kl_penalised_rewards`).
3. **Advantages**: a value head (one linear layer on the policy's last hidden state, trained beside
   the adapter and dropped after training) estimates each state's return; GAE turns rewards and values
   into advantages, whitened over the batch.
4. **Updates**: ``ppo.epochs_per_rollout`` passes over the answers in minibatches, each minimising the
   clipped surrogate plus ``value_coef`` × the clipped value loss; a pass that moved the policy by more
   than ``ppo.update_kl_limit`` (approximate KL to the policy that sampled) ends the step early.
5. **KL control**: with ``ppo.target_kl`` set, ``kl_coef`` grows while the answers' KL to the reference is
   above the target and shrinks while below (at most 10 % per step).

The maths of each part is in :mod:`tuneloop.losses.ppo`, tested against hand-computed values. Every
step's reward, KL, losses and clip fraction go to ``log.jsonl``. Evaluation (``tuneloop eval``) scores
greedy answers to the held-out prompts with the same reward run, base against tuned.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from tuneloop.errors import DataError
from tuneloop.objectives.base import Task, check_reference_is_the_base
from tuneloop.progress import console, generation_progress
from tuneloop.rl.loop_checks import check_loop_settings
from tuneloop.rl.policy_score import score_policy
from tuneloop.rl.prompts import PROMPT_FORMATS, prompt_turns
from tuneloop.rl.reward_model import RewardScorer, check_reward_run
from tuneloop.runs.folder import RunDir
from tuneloop.text.tokenize import render_ids


@dataclass(frozen=True)
class TokenizedPrompt:
    """A prompt as the policy reads it (chat-rendered ids with the generation prompt), and its turns for the reward model."""

    ids: tuple[int, ...]
    turns: tuple[dict, ...]

    def __len__(self) -> int:
        return len(self.ids)


class PpoTask(Task):
    name = "ppo"
    formats = PROMPT_FORMATS
    default_primary = "mean_reward"
    trains_itself = True
    follows_precision = False
    perplexity = False
    packs = False

    def check_config(self, config) -> None:
        super().check_config(config)
        check_reference_is_the_base(self.name, config.method.name)
        check_reward_run(config.ppo.reward_run, "ppo.reward_run")
        check_loop_settings(self.name, config)

    def check_splits(self, splits) -> None:
        if len(splits.train) < 2:
            raise DataError(f"task ppo: the training split holds {len(splits.train)} prompt(s); PPO needs at least 2 to sample answers for")

    def tokenize(self, tokenizer, example, labels):
        turns = prompt_turns(example)
        return TokenizedPrompt(tuple(render_ids(tokenizer, turns, add_generation_prompt=True)), tuple(turns))

    def fit(self, model, tokenizer, data, config, out) -> dict:
        return PpoLoop(model, tokenizer, config, RunDir(out)).run(data.train_tokens)

    def score(self, model, tokenizer, test, config, labels, packs):
        return score_policy(model, tokenizer, test, config, config.ppo.reward_run, "ppo.reward_run")


class PpoLoop:
    """The PPO steps of one run: the policy (the model with its adapter), its value head and optimiser."""

    def __init__(self, model, tokenizer, config, run: RunDir):
        import torch

        self.model, self.tokenizer, self.config, self.folder = model, tokenizer, config, run
        self.settings = config.ppo
        self.reward = RewardScorer.from_run(self.settings.reward_run)
        torch.manual_seed(config.train.seed)
        hidden = model.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1).to(model.device)
        torch.nn.init.normal_(self.value_head.weight, std=1 / math.sqrt(hidden + 1))
        torch.nn.init.zeros_(self.value_head.bias)
        trainable = [p for p in model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(trainable, lr=config.train.learning_rate, weight_decay=config.train.weight_decay)
        self.trainable = trainable
        self.kl_coef = self.settings.kl_coef
        self.real_tokens = 0

    def run(self, prompts: list[TokenizedPrompt]) -> dict:
        steps = ppo_steps(self.config.train, len(prompts), self.settings.rollouts_per_step)
        batches = prompt_batches(prompts, self.settings.rollouts_per_step, self.config.train.seed)
        started = time.perf_counter()
        self.model.eval()  # no dropout: the log-probs of the sampling policy and of the updated one must be comparable
        record = {}
        with generation_progress(steps, "PPO steps") as advance:
            for step in range(1, steps + 1):
                record = self.step(next(batches))
                record.update(step=step, kl_coef=round(self.kl_coef, 6), real_tokens=self.real_tokens)
                record["tokens_per_s"] = round(self.real_tokens / max(time.perf_counter() - started, 1e-9), 2)
                self.folder.append_log(record)
                self.kl_coef = adapted_kl_coef(self.kl_coef, record["kl"], self.settings.target_kl)
                advance(1)
        console().print(f"PPO: {steps} steps, last mean reward {record.get('reward', float('nan')):+.3f}, KL to the reference {record.get('kl', float('nan')):.3f}")
        return {"steps": steps, "real_tokens": self.real_tokens, "final_reward": record.get("reward"), "final_kl": record.get("kl"), "final_kl_coef": self.kl_coef}

    def step(self, prompts: list[TokenizedPrompt]) -> dict:
        """One PPO step on ``prompts``; the step's record for ``log.jsonl``."""
        import torch

        from tuneloop.losses.distill import base_model
        from tuneloop.losses.ppo import gae, kl_penalised_rewards, masked_mean, masked_whiten
        from tuneloop.rl.rollouts import sample_rollouts, token_logprobs_and_values

        s = self.settings
        rollouts = sample_rollouts(self.model, self.tokenizer, [list(p.ids) for p in prompts], s.max_new_tokens, s.temperature)
        self.real_tokens += rollouts.real_tokens
        scores = self.reward.scores([list(p.turns) for p in prompts], rollouts.answers)
        with torch.no_grad():
            old_logprobs, old_values = token_logprobs_and_values(self.model, self.value_head, rollouts)
            with base_model(self.model) as reference:
                ref_logprobs, _ = token_logprobs_and_values(reference, None, rollouts)
        mask = rollouts.mask.to(old_logprobs.device).float()
        rewards = kl_penalised_rewards(scores.to(mask.device), old_logprobs, ref_logprobs, mask, self.kl_coef)
        advantages, returns = gae(rewards, old_values, mask, s.gamma, s.lam)
        advantages = masked_whiten(advantages, mask)
        kl_per_answer = ((old_logprobs - ref_logprobs) * mask).sum(dim=1)
        update = self.update(rollouts, old_logprobs, old_values, advantages, returns)
        return {
            "reward": round(float(scores.mean()), 6),
            "reward_std": round(float(scores.std()), 6) if len(scores) > 1 else 0.0,
            "kl": round(float(kl_per_answer.mean()), 6),
            "answer_tokens": round(float(mask.sum(dim=1).mean()), 2),
            "value_mean": round(float(masked_mean(old_values, mask)), 6),
            **update,
        }

    def update(self, rollouts, old_logprobs, old_values, advantages, returns) -> dict:
        """``epochs_per_rollout`` passes of minibatch updates; averages of the losses and clip fraction."""
        import torch

        from tuneloop.losses.ppo import policy_loss, value_loss
        from tuneloop.rl.rollouts import token_logprobs_and_values

        s = self.settings
        generator = torch.Generator().manual_seed(self.config.train.seed + self.real_tokens)
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0}
        updates, passes = 0, 0
        rows = len(rollouts.answers)
        for _ in range(s.epochs_per_rollout):
            passes += 1
            pass_kl = []
            for index in torch.randperm(rows, generator=generator).split(s.minibatch_size):
                part = rollouts.rows(index)
                first, last = rollouts.span(index)
                columns = slice(first, last - 1)
                mask = part.mask.to(old_logprobs.device).float()
                if mask.sum() == 0:
                    continue
                logprobs, values = token_logprobs_and_values(self.model, self.value_head, part)
                p_loss, clip_fraction, approx_kl = policy_loss(logprobs, old_logprobs[index, columns], advantages[index, columns], mask, s.clip_range)
                v_loss = value_loss(values, old_values[index, columns], returns[index, columns], mask, s.clip_range_value)
                loss = p_loss + s.value_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
                self.optimizer.step()
                updates += 1
                pass_kl.append(float(approx_kl))
                for name, value in (("policy_loss", p_loss), ("value_loss", v_loss), ("clip_fraction", clip_fraction), ("approx_kl", approx_kl)):
                    totals[name] += float(value.detach())
            if pass_kl and sum(pass_kl) / len(pass_kl) > s.update_kl_limit:
                break
        return {name: round(total / max(updates, 1), 6) for name, total in totals.items()} | {"passes": passes}


def ppo_steps(train, prompts: int, per_step: int) -> int:
    """PPO steps of the run: ``train.max_steps`` when set, else ``train.epochs`` passes over the prompts."""
    return train.max_steps if train.max_steps > 0 else max(1, math.ceil(train.epochs * prompts / per_step))


def prompt_batches(prompts: list, per_step: int, seed: int):
    """Endless batches of ``per_step`` prompts: each pass over the prompts in a new seeded order."""
    rng = random.Random(seed)
    queue: list = []
    while True:
        while len(queue) < per_step:
            order = list(prompts)
            rng.shuffle(order)
            queue.extend(order)
        yield queue[:per_step]
        queue = queue[per_step:]


def adapted_kl_coef(kl_coef: float, kl: float, target: float | None) -> float:
    """The adaptive KL controller (Ziegler et al., 2019), proportional and clipped: kl_coef × (1 + 0.1·e)
    with e = clip(kl / target − 1, −1, 1); unchanged without a target."""
    if target is None:
        return kl_coef
    error = max(-1.0, min(1.0, kl / target - 1.0))
    return kl_coef * (1.0 + 0.1 * error)


PPO = PpoTask()
