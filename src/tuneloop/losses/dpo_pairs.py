"""DPO's completion log-probabilities in one packed row per batch, the prompt read once, the head fused.

TRL's DPO batch is ``[2 * pairs, longest]``: prompt + chosen rows, then prompt + rejected rows, right
padded. Every prompt is read twice, every row is padded to the longest, and the LM head computes
logits at every position, prompt and padding included, for a ``[rows, seq, vocab]`` fp32
log-softmax (SmolLM2's vocabulary is 49,152). Here the same sums come from

* **one row holding every pair once**: ``prompt, chosen, rejected`` for each pair, no padding. The
  rejected reply's positions continue the prompt's (``position_ids`` ``p .. p + r - 1``, as in its own
  row), and attention runs per pair: prompt + chosen causally, the rejected reply over the prompt's
  keys and its own, causally, never the chosen reply's. Each token therefore sees exactly the tokens it
  sees in TRL's rows, so every hidden state is the one the padded rows give;
* **the head only where a completion token is predicted**, fused with its log-softmax and chunked
  (:class:`HeadLogProbs`): no ``[tokens, vocab]`` tensor is kept, and the gradient for the hidden states
  is computed chunk by chunk in the forward, scaled by the incoming gradient in the backward.

:func:`packed_completion_log_probs` gives None where this cannot apply (an attention other than SDPA, a
head that is not a plain Linear or is itself trained, gradient checkpointing, an empty prompt or reply); the caller then computes the
plain way. ``tests/unit/objectives/test_dpo_fast.py`` holds both equal, values and gradients.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from tuneloop.losses.linear_ce import CHUNK_ELEMENTS, fusable_head

NAME = "tuneloop_dpo_pairs"
SDPA_NAMES = ("sdpa", "tuneloop_segmented_sdpa")  # transformers' SDPA, and train/segmented_attention.py's over it
_layout: PairLayout | None = None  # the row the attention of the current forward reads, set by pair_attention_for


@dataclass(frozen=True)
class PairLayout:
    """Where each pair lies in the packed row: ``(offset, prompt, chosen, rejected)`` lengths."""

    pairs: tuple[tuple[int, int, int, int], ...]
    total: int


@dataclass(frozen=True)
class PackedPairs:
    input_ids: torch.Tensor  # [1, total]
    position_ids: torch.Tensor  # [1, total]
    layout: PairLayout
    predictors: torch.Tensor  # [completion tokens]: row index of the hidden state predicting each completion token
    targets: torch.Tensor  # [completion tokens]: the token ids
    sequence: torch.Tensor  # [completion tokens]: which of the 2 * pairs sequences (chosen first) each belongs to


def pair_lengths(batch: dict) -> list[tuple[int, int, int]] | None:
    """``(prompt, chosen, rejected)`` lengths of each pair of a TRL DPO batch, or None when one is empty."""
    completion, attention = batch["completion_mask"].cpu(), batch["attention_mask"].cpu()
    pairs = completion.shape[0] // 2
    prompts = (completion.cumsum(1) == 0).sum(1)  # completions start after the prompt; padding follows them
    lengths = attention.sum(1) - prompts
    out = [(int(prompts[k]), int(lengths[k]), int(lengths[pairs + k])) for k in range(pairs)]
    if any(0 in (p, c, r) or int(prompts[pairs + k]) != p for k, (p, c, r) in enumerate(out)):
        return None
    return out


def pack_pairs(batch: dict, keep: list[int] | None = None) -> PackedPairs | None:
    """The pairs of a TRL DPO batch (those in ``keep``, all by default) as one row; None when a prompt is empty."""
    lengths = pair_lengths(batch)
    if lengths is None:
        return None
    ids = batch["input_ids"].cpu()
    pairs = len(lengths)
    chosen_side = list(range(pairs)) if keep is None else keep
    pieces, positions, predictors, targets, sequence, layout = [], [], [], [], [], []
    offset = 0
    for slot, k in enumerate(chosen_side):
        p, c, r = lengths[k]
        pieces += [ids[k, : p + c], ids[pairs + k, p : p + r]]
        positions += [torch.arange(p + c), torch.arange(p, p + r)]
        predictors += [torch.arange(offset + p - 1, offset + p + c - 1), torch.tensor([offset + p - 1]),
                       torch.arange(offset + p + c, offset + p + c + r - 1)]  # fmt: skip
        targets += [ids[k, p : p + c], ids[pairs + k, p : p + r]]
        sequence += [torch.full((c,), slot), torch.full((r,), len(chosen_side) + slot)]
        layout.append((offset, p, c, r))
        offset += p + c + r
    return PackedPairs(
        input_ids=torch.cat(pieces)[None],
        position_ids=torch.cat(positions)[None],
        layout=PairLayout(tuple(layout), offset),
        predictors=torch.cat(predictors),
        targets=torch.cat(targets),
        sequence=torch.cat(sequence),
    )


def packed_completion_log_probs(model, batch: dict, keep: list[int] | None = None) -> torch.Tensor | None:
    """``[2 * pairs]`` completion log-probs summed per sequence (chosen sequences first), fp32, as
    ``completion_log_probs`` gives them on the padded batch; only the pairs in ``keep`` when given.
    None when this path does not apply to ``model`` or ``batch``."""
    inner = getattr(model, "module", model)
    head = fusable_head(inner)
    if head is None or head.weight.requires_grad or (head.bias is not None and head.bias.requires_grad):
        return None
    if checkpointing(inner):  # the recomputation in the backward would run outside the layout
        return None
    packed = pack_pairs(batch, keep)
    if packed is None:
        return None
    device = head.weight.device
    captured = {}

    def capture(module, args):
        captured["hidden"] = args[0].reshape(-1, args[0].shape[-1])
        return (args[0][..., :0, :],)

    with pair_attention_for(inner, packed.layout) as switched:
        if not switched:
            return None
        handle = head.register_forward_pre_hook(capture)
        try:
            model(input_ids=packed.input_ids.to(device), position_ids=packed.position_ids.to(device), use_cache=False)
        finally:
            handle.remove()
    hidden = captured["hidden"][packed.predictors.to(device)]
    token_log_probs = HeadLogProbs.apply(hidden, head.weight, head.bias, packed.targets.to(device))
    sums = torch.zeros(2 * (len(packed.layout.pairs)), dtype=torch.float32, device=device)
    return sums.index_add(0, packed.sequence.to(device), token_log_probs)


def checkpointing(model) -> bool:
    """Whether activation checkpointing is on (transformers 5 renamed the attribute; the old name warns)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        with contextlib.suppress(AttributeError):
            return bool(getattr(model, name))
    return False


class HeadLogProbs(torch.autograd.Function):
    """``log_softmax(hidden @ weight.T + bias)[i, targets_i]`` per row, fp32, chunked; the gradient for
    ``hidden`` (``(onehot - softmax) @ weight`` per row) is computed in the forward, where the chunk's
    logits are at hand, and scaled by each row's incoming gradient in the backward. The head's own
    weights get no gradient (the caller falls back to the plain path for a trained head)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):
        log_probs, hidden_grad = chunked_log_probs(hidden, weight, bias, targets, hidden.requires_grad)
        if hidden_grad is not None:
            ctx.save_for_backward(hidden_grad)
        ctx.hidden_dtype = hidden.dtype
        return log_probs

    @staticmethod
    def backward(ctx, grad_log_probs):
        (hidden_grad,) = ctx.saved_tensors
        return (hidden_grad * grad_log_probs[:, None].to(hidden_grad.dtype)).to(ctx.hidden_dtype), None, None, None


def chunked_log_probs(hidden, weight, bias, targets, needs_grad: bool):
    most_rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
    chunks = max(1, -(-hidden.shape[0] // most_rows))
    rows = max(1, -(-hidden.shape[0] // chunks))  # equal chunks
    log_probs = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    hidden_grad = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if needs_grad else None
    for start in range(0, hidden.shape[0], rows):
        h, t = hidden[start : start + rows], targets[start : start + rows]
        logits = torch.nn.functional.linear(h, weight, bias).float()
        logits = logits.sub_(torch.logsumexp(logits, dim=-1, keepdim=True))  # log-softmax in place
        log_probs[start : start + rows] = logits.gather(1, t[:, None]).squeeze(1)
        if needs_grad:
            probs = logits.exp_().neg_()  # d log p_t / d logits = onehot - softmax
            probs[torch.arange(len(t), device=t.device), t] += 1.0
            hidden_grad[start : start + rows] = probs.to(weight.dtype) @ weight
    return log_probs, hidden_grad


# --- attention over the packed pairs ------------------------------------------------------------


def pair_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """``query`` ``[1, heads, total, dim]`` -> ``([1, total, heads, dim], None)``: prompt + chosen causally,
    rejected over the prompt and itself; anything else (no layout set, a cache) is transformers' SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout = _layout
    if layout is None or query.shape[0] != 1 or query.shape[2] != layout.total or key.shape[2] != layout.total:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    parts = []
    for offset, p, c, r in layout.pairs:
        first, rejected = slice(offset, offset + p + c), slice(offset + p + c, offset + p + c + r)
        parts.append(sdpa_attention_forward(module, query[:, :, first], key[:, :, first], value[:, :, first], None,
                                            dropout=dropout, scaling=scaling, is_causal=True)[0])  # fmt: skip
        prompt = slice(offset, offset + p)
        keys = torch.cat([key[:, :, prompt], key[:, :, rejected]], dim=2)
        values = torch.cat([value[:, :, prompt], value[:, :, rejected]], dim=2)
        mask = torch.ones(r, p + r, dtype=torch.bool, device=query.device)
        mask[:, p:] = torch.ones(r, r, dtype=torch.bool, device=query.device).tril_()
        parts.append(sdpa_attention_forward(module, query[:, :, rejected], keys, values, mask[None, None],
                                            dropout=dropout, scaling=scaling, is_causal=False)[0])  # fmt: skip
    return torch.cat(parts, dim=1), None


def no_mask(*args, **kwargs):
    """The layout decides what attends to what; transformers need not build a mask for the row."""
    return None


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(NAME, pair_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, no_mask)


@contextlib.contextmanager
def pair_attention_for(model, layout: PairLayout):
    """Within the block, ``model``'s SDPA attention (plain or tuneloop's segmented) reads ``layout``;
    yields whether any was switched (False: the model attends some other way, nothing changed)."""
    global _layout
    register()
    switched = []
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "_attn_implementation", None) in SDPA_NAMES and not any(config is c for c, _ in switched):
            switched.append((config, config._attn_implementation))
            config._attn_implementation = NAME
    _layout = layout
    try:
        yield bool(switched)
    finally:
        _layout = None
        for config, name in switched:
            config._attn_implementation = name
