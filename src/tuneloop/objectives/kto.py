"""Kahneman–Tversky optimisation: a chat model trained on single rated answers (good or bad), no pairs needed.

Each ``ratings`` row is tokenised as TRL's ``KTOTrainer`` tokenises a conversational one: the prompt's
turns rendered with the chat template and a generation prompt, then the answer as what the template adds.
With the log-ratio ``z = log π(answer) - log π_ref(answer)`` summed over the answer's tokens, and
``kl`` an estimate of KL(π || π_ref) from the batch's mismatched prompt-answer pairs (each prompt with
the previous row's answer; no gradient; clamped at 0), the loss of one row is (Ethayarajh et al., 2024)::

    good:  desirable_weight   * (1 - σ(β (z - kl)))
    bad:   undesirable_weight * (1 - σ(β (kl - z)))

averaged over the batch's rows, as ``KTOTrainer`` computes it for ``loss_type="kto"``;
``tests/unit/objectives/test_kto.py`` holds tokens, batch and loss equal to its own. The reference is
the policy with its adapter switched off, as for :mod:`tuneloop.objectives.dpo`, so the task needs a
switchable method. The KL estimate needs two rows or more in a batch; it is taken per process.

Judged on held-out ratings by the implicit reward ``β z``: rating accuracy (share of answers whose reward
has the rating's sign: above 0 for good, below for bad; 0 counts as wrong), reward AUC (the chance that
a good answer's reward exceeds a bad one's, a tie counting half) and the mean reward of good and of bad
answers. The base is its own reference: its rewards are all 0, so its rating accuracy is 0 and its AUC 0.5.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tuneloop.errors import DataError
from tuneloop.losses.distill import base_model
from tuneloop.objectives.base import Task, check_reference_is_the_base
from tuneloop.objectives.dpo import common_prefix_length, completion_log_probs
from tuneloop.text.tokenize import render_ids


@dataclass(frozen=True)
class TokenizedRating:
    """One rated answer as the policy reads it: the rendered prompt, the answer's ids after it, its rating."""

    prompt_ids: list[int]
    completion_ids: list[int]
    good: bool

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def kto_losses(logratios, good, kl, beta: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
    """Per-row KTO loss (``[rows]``): ``logratios`` = log π - log π_ref, ``good`` a bool tensor, ``kl`` a scalar.

    >>> kto_losses(torch.tensor([2.0, 2.0]), torch.tensor([True, False]), torch.tensor(0.0), beta=1.0)  # doctest: +SKIP
    tensor([0.1192, 0.8808])
    """
    import torch

    good_losses = desirable_weight * (1 - torch.sigmoid(beta * (logratios - kl)))
    bad_losses = undesirable_weight * (1 - torch.sigmoid(beta * (kl - logratios)))
    return torch.where(good, good_losses, bad_losses)


class KtoTask(Task):
    name = "kto"
    formats = ("ratings",)
    default_primary = "rating_accuracy"
    generates = True  # the policy is a chat model
    perplexity = False  # the validation loss is the KTO loss, not a per-token cross-entropy
    packs = False

    def check_config(self, config) -> None:
        super().check_config(config)
        check_reference_is_the_base(self.name, config.method.name)

    def check_splits(self, splits):
        if len(splits.train) < 2:
            raise DataError(
                f"task kto: the training split holds {len(splits.train)} rated answer(s); KTO needs at least 2 "
                "(its KL estimate pairs each prompt with another row's answer)"
            )

    def tokenize(self, tokenizer, example, labels):
        """TRL's conversational tokenising: the answer starts where prompt and prompt + answer diverge."""
        prompt_ids = render_ids(tokenizer, example.prompt_turns, add_generation_prompt=True)
        full = render_ids(tokenizer, [*example.prompt_turns, {"role": "assistant", "content": example.completion}])
        start = common_prefix_length(prompt_ids, full)
        return TokenizedRating(prompt_ids[:start], full[start:], bool(example.good))

    def batch_rows(self, tokenized, packs, pack_length, seed):
        return sorted(tokenized, key=len, reverse=True)

    def collate(self, rows, pad_token_id):
        """TRL's unpaired batch: ``input_ids``, ``attention_mask``, ``completion_mask`` ``[rows, longest]``, and the
        ``KL_`` ones of each prompt with the previous row's answer (cyclically, as TRL rotates them); ``label``."""
        import torch
        from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

        answers = [row.completion_ids for row in rows]
        mismatched = answers[-1:] + answers[:-1]
        examples = [
            {"prompt_ids": row.prompt_ids, "completion_ids": row.completion_ids, "KL_completion_ids": other, "label": row.good}
            for row, other in zip(rows, mismatched)
        ]
        batch = DataCollatorForUnpairedPreference(pad_token_id)(examples)
        batch["real_tokens"] = torch.tensor(sum(len(row) for row in rows))
        return batch

    def loss_function(self, config):
        k = config.kto
        return functools.partial(self.summed_loss, beta=k.beta, desirable_weight=k.desirable_weight, undesirable_weight=k.undesirable_weight)

    def summed_loss(self, model, batch, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
        """(KTO loss summed over the batch's rows, number of rows)."""
        import torch

        policy = completion_log_probs(model, batch)
        mismatched = {key: batch[f"KL_{key}"] for key in ("input_ids", "attention_mask", "completion_mask")}
        with torch.no_grad():
            policy_kl = completion_log_probs(model, mismatched)
        with base_model(model) as reference:
            ref = completion_log_probs(reference, batch)
            ref_kl = completion_log_probs(reference, mismatched)
        kl = (policy_kl - ref_kl).mean().clamp(min=0)
        good = batch["label"].to(policy.device).bool()
        losses = kto_losses(policy - ref, good, kl, beta, desirable_weight, undesirable_weight)
        return losses.sum(), int(losses.numel())

    def score(self, model, tokenizer, test, config, labels, packs):
        rows = [self.tokenize(tokenizer, example, labels) for example in test]
        was_training = model.training
        model.eval()
        policy = self.answer_log_probs(model, rows, tokenizer.pad_token_id, config.eval.batch_size)
        reference = self.reference_log_probs(model, rows, tokenizer.pad_token_id, config, labels)
        model.train(was_training)
        rewards = (config.kto.beta * (policy - reference)).tolist()
        good = [row.good for row in rows]
        return {"scores": rating_scores(rewards, good), "predictions": [reward_text(r) for r in rewards]}

    def answer_log_probs(self, model, rows: list, pad_token_id: int, batch_size: int):
        """``[rows]``: each answer's log-probability under ``model``, in the rows' order."""
        import torch

        found = []
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                found.append(completion_log_probs(model, self.collate(rows[start : start + batch_size], pad_token_id)).cpu())
        return torch.cat(found)

    def reference_log_probs(self, model, rows, pad_token_id, config, labels):
        """The model with its adapter off, or, for a model without one (the base, or a merged tuned model), the run's base."""
        if hasattr(getattr(model, "module", model), "disable_adapter"):
            with base_model(model) as reference:
                return self.answer_log_probs(reference, rows, pad_token_id, config.eval.batch_size)
        reference = self.load_model(config.model, labels).to(model.device).eval()
        return self.answer_log_probs(reference, rows, pad_token_id, config.eval.batch_size)


def rating_scores(rewards: list[float], good: list[bool]) -> dict:
    """Rating accuracy (the reward's sign agrees with the rating; 0 is wrong), and where the test holds both
    kinds, reward AUC (ties count half) and the mean reward of good and of bad answers."""
    right = [(r > 0) if g else (r < 0) for r, g in zip(rewards, good)]
    scores = {"rating_accuracy": sum(right) / len(right)}
    good_rewards = [r for r, g in zip(rewards, good) if g]
    bad_rewards = [r for r, g in zip(rewards, good) if not g]
    if good_rewards:
        scores["good_reward"] = sum(good_rewards) / len(good_rewards)
    if bad_rewards:
        scores["bad_reward"] = sum(bad_rewards) / len(bad_rewards)
    if good_rewards and bad_rewards:
        wins = sum((g > b) + 0.5 * (g == b) for g in good_rewards for b in bad_rewards)
        scores["reward_auc"] = wins / (len(good_rewards) * len(bad_rewards))
    return scores


def reward_text(reward: float) -> str:
    """What predictions.jsonl and the report show for one rated answer."""
    return f"{'good' if reward > 0 else 'bad'} (implicit reward {reward:+.3f})"


KTO = KtoTask()
