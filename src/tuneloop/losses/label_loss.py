"""Causal-LM loss computed only where a label exists.

The LM head is the largest matmul of a small model (SmolLM2: 576 x 49,152) and its logits the
largest activation; prompt tokens carry no loss, so their logits are never computed. transformers
accepts a boolean ``logits_to_keep`` mask and hands the head only the kept positions; the head and
its cross-entropy then run fused and chunked (:mod:`tuneloop.losses.linear_ce`), so no
``[kept, vocab]`` logits tensor exists. The call still goes through the (possibly DDP-wrapped)
model's own forward, so gradient synchronisation is untouched.

Replay rows trained by KL (``data.replay_loss: kl``) carry labels on every token, and those
positions take the KL divergence from the base model instead of the cross-entropy
(:mod:`tuneloop.losses.distill`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneloop.losses.distill import base_targets, mixed_loss
from tuneloop.losses.linear_ce import fusable_head, head_loss

IGNORE = -100


def label_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of positions whose *next* token has a label, and those next tokens.

    labels: ``[batch, seq]`` -> (keep ``[batch, seq]`` bool, targets ``[kept]`` long)
    """
    next_labels = torch.full_like(labels, IGNORE)
    next_labels[:, :-1] = labels[:, 1:]
    keep = next_labels != IGNORE
    return keep, next_labels[keep]


def summed_label_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Sum of token losses over labelled positions, and how many there were.

    ``batch`` is packed (``position_ids``, from :func:`~tuneloop.text.tokenize.collate_packed`)
    or padded (``attention_mask``, from :func:`~tuneloop.text.tokenize.collate_padded`). Packed
    batches may carry a ``distill_mask`` of replay tokens, scored by the KL divergence from the
    base model's distribution instead of their cross-entropy (:mod:`tuneloop.losses.distill`).
    """
    if "position_ids" in batch:
        return packed_label_loss(model, batch["input_ids"], batch["position_ids"], batch["labels"], batch.get("distill_mask"))
    return padded_label_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])


def packed_label_loss(model, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor, distill_mask=None):
    keep, targets = label_positions(labels)
    head = fusable_head(getattr(model, "module", model))  # DDP keeps the model in .module
    distilled = base_targets(model, head, input_ids, position_ids, keep, distill_mask)  # None: no replay token
    if head is None:  # a head that is adapted or rescales its logits: plain logits for the kept positions
        logits = model(input_ids=input_ids, position_ids=position_ids, logits_to_keep=keep, use_cache=False).logits.float()
        if distilled is None:
            return F.cross_entropy(logits, targets, reduction="sum"), targets.numel()
        return mixed_loss(logits, targets, *distilled), targets.numel()
    with head_loss(head, targets, *(distilled or ())) as fused:
        model(input_ids=input_ids, position_ids=position_ids, logits_to_keep=keep, use_cache=False)
    return fused["loss"], targets.numel()


def per_row_label_losses(model, batch: dict) -> torch.Tensor:
    """``[rows]``: each padded row's mean token loss over its labels (one example per row).

    From the model's full logits, never the fused head or a ``logits_to_keep`` mask: both drop the
    row dimension, and per-example gradient hooks (DP-SGD) must see one row per example at every
    layer, a trainable head included.
    """
    sums, counts = per_row_label_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return sums / counts.clamp(min=1)


def padded_label_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """For methods that prepend virtual tokens (prompt learning): the model's own shifted loss.

    peft extends ``labels`` with ignored positions for the virtual tokens; ``position_ids``
    would be dropped there, which is why such methods are never packed.
    """
    count = int((labels[:, 1:] != IGNORE).sum())
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
    return outputs.loss.float() * count, count


def per_row_label_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """Each row's summed token loss and label count, on a padded batch (one example per row).

    ``summed_label_loss`` sums a batch; a privacy audit needs each row on its own (one loss per
    training or held-out row, one log-perplexity per candidate secret). input_ids, attention_mask,
    labels: ``[batch, seq]`` -> (sums ``[batch]`` float, counts ``[batch]`` long). Methods that prepend
    virtual tokens give logits for those too: the last ``seq`` positions are the rows' own.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logits = logits[:, -input_ids.shape[1] :].float()
    keep, targets = label_positions(labels)
    token_losses = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    token_losses[keep] = F.cross_entropy(logits[keep], targets, reduction="none")
    return token_losses.sum(dim=1), keep.sum(dim=1)
