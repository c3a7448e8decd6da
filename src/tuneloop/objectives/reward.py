"""Reward model: one score per (prompt, reply), learnt from preference pairs.

The model is the base with a fresh one-output head (``AutoModelForSequenceClassification``,
``num_labels=1``), seeded like the classifier's so evaluation rebuilds the head training began
from. Each ``pairs`` row is rendered twice with the chat template, prompt + chosen reply and
prompt + rejected reply, and trained with the Bradley–Terry loss::

    loss = -log σ(r(prompt, chosen) - r(prompt, rejected))

TRL's ``RewardTrainer`` computes the same loss on the same batch layout (its
``DataCollatorForPreference``: the chosen sequences in the first half of the batch, the rejected in
the second); ``tests/unit/objectives/test_reward.py`` holds the two equal. The loss lives in this
task's hooks rather than in a second trainer so that a reward run is an ordinary tuneloop run:
every method, early stopping, resume, the run folder and the base-vs-tuned report are shared.

Judged by held-out pairwise accuracy (share of pairs with r(chosen) > r(rejected); the fresh head of
the base model scores about 0.5) and the mean reward margin r(chosen) - r(rejected).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.errors import DataError
from tuneloop.models.load import load_pretrained
from tuneloop.objectives.base import Task


@dataclass(frozen=True)
class TokenizedPair:
    """One preference pair as the model reads it: prompt + chosen, prompt + rejected (chat-rendered ids)."""

    chosen_ids: list[int]
    rejected_ids: list[int]

    def __len__(self) -> int:
        # The longer of the two sequences: data.max_length bounds each sequence the model reads, as TRL's does.
        return max(len(self.chosen_ids), len(self.rejected_ids))


@dataclass(frozen=True)
class PairRow:
    """A pair as a batch holds it: both sequences, so train.tokens_per_batch counts both."""

    chosen_ids: list[int]
    rejected_ids: list[int]

    def __len__(self) -> int:
        return len(self.chosen_ids) + len(self.rejected_ids)


def bradley_terry_loss(chosen_rewards, rejected_rewards):
    """Per-pair loss ``-log σ(r_chosen - r_rejected)`` (tensors of shape ``[pairs]``), computed stably.

    >>> bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]))  # doctest: +SKIP
    tensor([0.1269])
    """
    import torch.nn.functional as F

    return -F.logsigmoid(chosen_rewards - rejected_rewards)


class RewardTask(Task):
    name = "reward"
    formats = ("pairs",)
    peft_task_type = "SEQ_CLS"
    default_primary = "pairwise_accuracy"
    generates = False
    predicts = "a reward score per reply"
    packs = False  # one pooled score per sequence

    def check_splits(self, splits):
        if len(splits.train) < 2:
            raise DataError(
                f"task reward: the training split holds {len(splits.train)} preference pair(s); a reward model needs "
                "at least 2 to learn from (add pairs, or lower data.val_fraction / data.test_fraction)"
            )

    def load_model(self, model_config, labels):
        from transformers import AutoModelForSequenceClassification

        model = load_pretrained(AutoModelForSequenceClassification, model_config, num_labels=1)
        if model.config.pad_token_id is None:  # decoders pool the last non-pad token: they must know pad
            model.config.pad_token_id = self.load_tokenizer(model_config).pad_token_id
        return model

    def tokenize(self, tokenizer, example, labels):
        """Both replies rendered after the prompt with the chat template (TRL's conversational tokenising)."""
        return TokenizedPair(reply_ids(tokenizer, example.prompt_turns, example.chosen), reply_ids(tokenizer, example.prompt_turns, example.rejected))

    def batch_rows(self, tokenized, packs, pack_length, seed):
        return [PairRow(pair.chosen_ids, pair.rejected_ids) for pair in sorted(tokenized, key=len, reverse=True)]

    def collate(self, rows, pad_token_id):
        """TRL's preference batch: ``input_ids``/``attention_mask`` of shape ``[2 * pairs, longest]``, chosen
        sequences first, right-padded; plus ``real_tokens`` for the throughput log."""
        import torch
        from trl.trainer.reward_trainer import DataCollatorForPreference

        batch = DataCollatorForPreference(pad_token_id)([{"chosen_ids": r.chosen_ids, "rejected_ids": r.rejected_ids} for r in rows])
        batch["real_tokens"] = torch.tensor(sum(len(r.chosen_ids) + len(r.rejected_ids) for r in rows))
        return batch

    def summed_loss(self, model, batch):
        """(Bradley–Terry loss summed over the batch's pairs, number of pairs)."""
        chosen, rejected = pair_rewards(model, batch)
        return bradley_terry_loss(chosen, rejected).sum(), int(chosen.numel())

    def score(self, model, tokenizer, test, config, labels, packs):
        import torch

        pairs = [self.tokenize(tokenizer, example, labels) for example in test]
        margins = []
        model.eval()
        with torch.no_grad():
            for start in range(0, len(pairs), config.eval.batch_size):
                batch = self.collate(pairs[start : start + config.eval.batch_size], tokenizer.pad_token_id)
                chosen, rejected = pair_rewards(model, batch)
                margins += (chosen - rejected).tolist()
        return {"scores": pairwise_scores(margins), "predictions": [preference_text(margin) for margin in margins]}


def reply_ids(tokenizer, prompt_turns: list[dict], reply: str) -> list[int]:
    """The prompt's turns (a system prompt and earlier turns included) and the reply, rendered by the chat template."""
    messages = [*prompt_turns, {"role": "assistant", "content": reply}]
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def pair_rewards(model, batch: dict):
    """(rewards of the chosen sequences, rewards of the rejected), each of shape ``[pairs]``, in fp32."""
    device = model.device
    rewards = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
    return rewards.squeeze(-1).float().chunk(2)


def pairwise_scores(margins: list[float]) -> dict:
    """Pairwise accuracy (a tie counts as wrong, as in TRL), mean margin and mean Bradley–Terry loss of the margins."""
    import torch
    import torch.nn.functional as F

    values = torch.tensor(margins, dtype=torch.float64)
    return {
        "pairwise_accuracy": float((values > 0).double().mean()),
        "reward_margin": float(values.mean()),
        "loss": float(-F.logsigmoid(values).mean()),
    }


def preference_text(margin: float) -> str:
    """What predictions.jsonl and the report show for one pair."""
    return f"{'chosen' if margin > 0 else 'rejected'} preferred (margin {margin:+.3f})"


REWARD = RewardTask()
