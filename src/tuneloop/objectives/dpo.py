"""Direct preference optimisation: a chat model trained on preference pairs, no reward model in between.

Each ``pairs`` row is tokenised as TRL's ``DPOTrainer`` tokenises a conversational pair: the prompt's
turns rendered with the chat template and a generation prompt, then each reply as what the template
adds after it. The policy is trained with the DPO sigmoid loss (Rafailov et al., 2023)::

    loss = -log σ(β [(log π(chosen) - log π_ref(chosen)) - (log π(rejected) - log π_ref(rejected))])

where ``log π(reply)`` sums the log-probabilities of the reply's tokens only (the prompt's are not
scored) and β is ``dpo.beta``. The reference π_ref is the policy with its adapter switched off
(peft's ``disable_adapter``, as KL replay uses it): one forward pass without gradients and no second
copy of the weights, which is why the task needs a switchable method (LoRA, DoRA, rsLoRA, IA3).
Training computes the loss through :class:`DpoLoss`: under ``train.fused_kernels`` each batch is one
packed row (every prompt read once, the head fused at completion tokens only,
:mod:`tuneloop.losses.dpo_pairs`), and under ``dpo.precompute_reference`` each pair's reference
log-probs are kept after its first pass, since the reference never changes.
``tests/unit/objectives/test_dpo.py`` holds the tokenising, the batch and the loss equal to
``DPOTrainer``'s. The loss lives in this task's hooks rather than in TRL's trainer, as the reward
model's does, so that a DPO run is an ordinary tuneloop run (methods, early stopping, resume, the run
folder, the base-vs-tuned report).

Judged on held-out pairs by the implicit reward ``β (log π - log π_ref)``: preference accuracy (share of
pairs whose chosen reply has the higher implicit reward; a tie counts as wrong), the mean reward margin
and the mean log-ratio of the chosen replies (how far the policy moved from the reference on them).
The base model *is* the reference, so its implicit rewards are all 0 and its preference accuracy is 0
by the tie rule; ``logprob_accuracy`` (share of pairs where the model itself gives the chosen reply the
higher log-probability) is the comparison that means something for both models.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.errors import DataError
from tuneloop.losses.distill import base_model
from tuneloop.objectives.base import Task, check_reference_is_the_base
from tuneloop.text.tokenize import render_ids


@dataclass(frozen=True)
class TokenizedDpoPair:
    """One pair as the policy reads it: the rendered prompt, then each reply's ids after it."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    def __len__(self) -> int:
        # The longer of the two sequences: data.max_length bounds each sequence the model reads.
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


@dataclass(frozen=True)
class DpoRow:
    """A pair as a batch holds it: both sequences, so train.tokens_per_batch counts both. ``collate`` reads
    the same fields of a :class:`TokenizedDpoPair` (a curriculum's unpacked rows are the pairs themselves)."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    def __len__(self) -> int:
        return 2 * len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)


def as_row(pair: TokenizedDpoPair) -> DpoRow:
    return DpoRow(pair.prompt_ids, pair.chosen_ids, pair.rejected_ids)


def dpo_sigmoid_loss(chosen_logratios, rejected_logratios, beta: float):
    """Per-pair DPO loss ``-log σ(β (chosen_logratio - rejected_logratio))``, tensors of shape ``[pairs]``,
    where a log-ratio is ``log π(reply) - log π_ref(reply)``.

    >>> dpo_sigmoid_loss(torch.tensor([1.0]), torch.tensor([-1.0]), beta=0.5)  # doctest: +SKIP
    tensor([0.3133])
    """
    import torch.nn.functional as F

    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))


class DpoTask(Task):
    name = "dpo"
    formats = ("pairs",)
    default_primary = "preference_accuracy"
    generates = True  # the policy is a chat model
    perplexity = False  # the validation loss is the DPO loss, not a per-token cross-entropy
    packs = False  # a pair's two sequences are scored side by side

    def check_config(self, config) -> None:
        super().check_config(config)
        check_reference_is_the_base(self.name, config.method.name)

    def check_splits(self, splits):
        if len(splits.train) < 2:
            raise DataError(
                f"task dpo: the training split holds {len(splits.train)} preference pair(s); DPO needs at least 2 "
                "to learn from (add pairs, or lower data.val_fraction / data.test_fraction)"
            )

    def tokenize(self, tokenizer, example, labels):
        """TRL's conversational tokenising: the completion starts where prompt and prompt + reply diverge."""
        prompt_ids = render_ids(tokenizer, example.prompt_turns, add_generation_prompt=True)
        chosen = render_ids(tokenizer, [*example.prompt_turns, {"role": "assistant", "content": example.chosen}])
        rejected = render_ids(tokenizer, [*example.prompt_turns, {"role": "assistant", "content": example.rejected}])
        start = min(common_prefix_length(prompt_ids, chosen), common_prefix_length(prompt_ids, rejected))
        return TokenizedDpoPair(prompt_ids[:start], chosen[start:], rejected[start:])

    def batch_rows(self, tokenized, packs, pack_length, seed):
        return [as_row(pair) for pair in sorted(tokenized, key=len, reverse=True)]

    def collate(self, rows, pad_token_id):
        """TRL's DPO batch: ``input_ids``, ``attention_mask`` and ``completion_mask`` of shape
        ``[2 * pairs, longest]``, prompt + chosen sequences first, right-padded; plus ``real_tokens``."""
        import torch
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        batch = DataCollatorForPreference(pad_token_id)([{"prompt_ids": r.prompt_ids, "chosen_ids": r.chosen_ids, "rejected_ids": r.rejected_ids} for r in rows])
        batch["real_tokens"] = torch.tensor(sum(len(as_row(row)) for row in rows))
        return batch

    def loss_function(self, config):
        """The loss the trainer trains on: the fast path (one packed row per batch, fused head) under
        ``train.fused_kernels``, each pair's reference log-probs kept after their first pass under
        ``dpo.precompute_reference``; both give the plain path's loss (tests/unit/objectives/test_dpo_fast.py)."""
        return DpoLoss(config.dpo.beta, fused=config.train.fused_kernels, keep_reference=config.dpo.precompute_reference)

    def summed_loss(self, model, batch, beta: float = 0.1):
        """(DPO sigmoid loss summed over the batch's pairs, number of pairs), the plain way."""
        chosen, rejected = log_ratios(model, batch)
        return dpo_sigmoid_loss(chosen, rejected, beta).sum(), int(chosen.numel())

    def score(self, model, tokenizer, test, config, labels, packs):
        pairs = [self.tokenize(tokenizer, example, labels) for example in test]
        was_training = model.training
        model.eval()
        policy_chosen, policy_rejected = self.sequence_log_probs(model, pairs, tokenizer.pad_token_id, config.eval.batch_size)
        ref_chosen, ref_rejected = self.reference_log_probs(model, pairs, tokenizer.pad_token_id, config, labels)
        model.train(was_training)
        chosen_ratios, rejected_ratios = policy_chosen - ref_chosen, policy_rejected - ref_rejected
        margins = (config.dpo.beta * (chosen_ratios - rejected_ratios)).tolist()
        scores = preference_scores(margins, chosen_ratios.tolist(), (policy_chosen - policy_rejected).tolist())
        return {"scores": scores, "predictions": [preference_text(margin) for margin in margins]}

    def sequence_log_probs(self, model, pairs: list, pad_token_id: int, batch_size: int):
        """(chosen, rejected) completion log-probs of ``model`` on ``pairs``, each ``[pairs]``, in the pairs' order."""
        import torch

        chosen, rejected = [], []
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                batch = self.collate(pairs[start : start + batch_size], pad_token_id)
                log_probs = completion_log_probs(model, batch).cpu()
                chosen.append(log_probs.chunk(2)[0])
                rejected.append(log_probs.chunk(2)[1])
        return torch.cat(chosen), torch.cat(rejected)

    def reference_log_probs(self, model, pairs, pad_token_id, config, labels):
        """The reference's (chosen, rejected) log-probs: the model with its adapter off, or, for a model
        without one (the base itself, or a tuned model whose adapter was merged in), the run's base model."""
        if hasattr(getattr(model, "module", model), "disable_adapter"):
            with base_model(model) as reference:
                return self.sequence_log_probs(reference, pairs, pad_token_id, config.eval.batch_size)
        reference = self.load_model(config.model, labels).to(model.device).eval()
        return self.sequence_log_probs(reference, pairs, pad_token_id, config.eval.batch_size)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


def completion_log_probs(model, batch: dict):
    """``[2 * pairs]``: each sequence's log-probability summed over its completion tokens, in fp32."""
    device = model.device
    input_ids, completion_mask = batch["input_ids"].to(device), batch["completion_mask"].to(device)
    logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"].to(device), use_cache=False).logits
    token_log_probs = logits[:, :-1].float().log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (token_log_probs * completion_mask[:, 1:]).sum(-1)


class DpoLoss:
    """``(model, batch) -> (summed DPO loss, pairs)`` for the trainer.

    ``fused``: log-probs from :func:`tuneloop.losses.dpo_pairs.packed_completion_log_probs` (prompt read
    once per pair, no padding, the head only at completion tokens), falling back to the plain path
    where that does not apply. ``keep_reference``: the reference's log-probs of each sequence are kept,
    keyed by its tokens, after the first batch that holds it; a batch whose pairs are all known runs
    no reference pass. The reference (the base with the adapter off) never changes during a run, so
    the kept values are those a new pass would give; a resumed run starts with none and fills them again.
    """

    def __init__(self, beta: float, fused: bool = True, keep_reference: bool = True):
        self.beta, self.fused, self.keep_reference = beta, fused, keep_reference
        self.reference: dict[bytes, float] = {}

    def __call__(self, model, batch: dict):
        policy = self.log_probs(model, batch)
        ref = self.reference_log_probs(model, batch)
        chosen, rejected = (policy - ref.to(policy.device)).chunk(2)
        return dpo_sigmoid_loss(chosen, rejected, self.beta).sum(), int(chosen.numel())

    def log_probs(self, model, batch: dict, keep: list[int] | None = None):
        """``[2 * pairs]`` (only the pairs in ``keep`` when given), chosen sequences first."""
        if self.fused:
            from tuneloop.losses.dpo_pairs import packed_completion_log_probs

            fast = packed_completion_log_probs(model, batch, keep)
            if fast is not None:
                return fast
        if keep is not None:
            pairs = batch["input_ids"].shape[0] // 2
            rows = [*keep, *(pairs + k for k in keep)]
            batch = {key: batch[key][rows] for key in ("input_ids", "attention_mask", "completion_mask")}
        return completion_log_probs(model, batch)

    def reference_log_probs(self, model, batch: dict):
        import torch

        if not self.keep_reference:
            with base_model(model) as reference:
                return self.log_probs(reference, batch).detach()
        keys = sequence_keys(batch)
        pairs = len(keys) // 2
        missing = [k for k in range(pairs) if keys[k] not in self.reference or keys[pairs + k] not in self.reference]
        if missing:
            with base_model(model) as reference:
                values = self.log_probs(reference, batch, None if len(missing) == pairs else missing).tolist()
            for slot, k in enumerate(missing):
                self.reference[keys[k]], self.reference[keys[pairs + k]] = values[slot], values[len(missing) + slot]
        return torch.tensor([self.reference[key] for key in keys], dtype=torch.float32)


def sequence_keys(batch: dict) -> list[bytes]:
    """Each sequence of the batch as the bytes of its real tokens and its completion mask."""
    ids, attention, completion = (batch[key].cpu() for key in ("input_ids", "attention_mask", "completion_mask"))
    return [
        ids[row][attention[row].bool()].numpy().tobytes() + completion[row][attention[row].bool()].numpy().tobytes()
        for row in range(ids.shape[0])
    ]


def log_ratios(model, batch: dict):
    """(chosen, rejected) ``log π - log π_ref``, each ``[pairs]``; the reference is ``model`` with its adapter off."""
    policy = completion_log_probs(model, batch)
    with base_model(model) as reference:
        ref = completion_log_probs(reference, batch)
    return (policy - ref).chunk(2)


def preference_scores(margins: list[float], chosen_ratios: list[float], own_margins: list[float]) -> dict:
    """Preference accuracy (implicit reward margin > 0; a tie counts as wrong, as in TRL), the mean
    implicit reward margin, the mean log-ratio of the chosen replies, the mean DPO loss of the margins,
    and logprob_accuracy: the share of pairs where the model gives the chosen reply the higher log-probability."""
    import torch
    import torch.nn.functional as F

    values = torch.tensor(margins, dtype=torch.float64)
    return {
        "preference_accuracy": float((values > 0).double().mean()),
        "reward_margin": float(values.mean()),
        "chosen_logratio": float(torch.tensor(chosen_ratios, dtype=torch.float64).mean()),
        "logprob_accuracy": float((torch.tensor(own_margins) > 0).double().mean()),
        "loss": float(-F.logsigmoid(values).mean()),
    }


def preference_text(margin: float) -> str:
    """What predictions.jsonl and the report show for one pair."""
    return f"{'chosen' if margin > 0 else 'rejected'} preferred (implicit reward margin {margin:+.3f})"


DPO = DpoTask()
