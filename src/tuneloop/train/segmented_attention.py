"""Attention over a packed row, one example at a time.

A packed row of 512 tokens holding examples of 150, 90, 200 and 72 tokens needs causal attention
inside each example only. SDPA with the block-diagonal mask transformers builds from
``position_ids`` still computes every query against every earlier key of the row (and its CPU
kernels backpropagate through the masked blocks too): 131k query-key pairs where the examples
hold 38k. Here each example's span goes through SDPA on its own with ``is_causal=True``, so the
work is the sum of the squared example lengths. Anything other than a packed row without a
cache (generation, left-padded rows, a row of one example) goes to transformers' own SDPA unchanged.

:func:`use_segmented_attention` switches a model loaded with ``sdpa`` to it; the name is
registered with transformers' attention and mask interfaces, so the masks it falls back on are SDPA's.
"""

from __future__ import annotations

import torch

NAME = "tuneloop_segmented_sdpa"
_last_spans: tuple = (None, -1, None)  # (position_ids, its version, spans): every layer of a forward gets the same tensor


def segmented_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, position_ids=None, **kwargs):
    """``query`` ``[batch, heads, seq, dim]`` -> ``([batch, seq, heads, dim], None)``, as transformers' SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    spans = spans_of_forward(position_ids) if query.shape[2] == key.shape[2] else None
    if spans is None or len(spans) != query.shape[0]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    rows = []
    for row, row_spans in enumerate(spans):
        parts = [
            sdpa_attention_forward(
                module, query[row : row + 1, :, start:end], key[row : row + 1, :, start:end], value[row : row + 1, :, start:end],
                None, dropout=dropout, scaling=scaling, is_causal=True,
            )[0]
            for start, end in row_spans
        ]  # fmt: skip
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows, dim=0), None


def spans_of_forward(position_ids: torch.Tensor | None) -> list[list[tuple[int, int]]] | None:
    """:func:`example_spans`, read once per forward pass rather than once per layer (a device sync on GPUs)."""
    global _last_spans
    tensor, version, spans = _last_spans
    if position_ids is None or tensor is not position_ids or version != position_ids._version:
        spans = example_spans(position_ids)
        _last_spans = (position_ids, -1 if position_ids is None else position_ids._version, spans)
    return spans


def example_spans(position_ids: torch.Tensor | None) -> list[list[tuple[int, int]]] | None:
    """``(start, end)`` of every example in every row (positions restart at 0), or None when no row is packed."""
    if position_ids is None or position_ids.dim() != 2:
        return None
    width = position_ids.shape[1]
    spans = []
    for starts in (position_ids == 0).cpu().tolist():
        bounds = [i for i, is_start in enumerate(starts) if is_start]
        if not bounds or bounds[0] != 0:
            return None  # a row that does not start an example is not a packed training row
        spans.append(list(zip(bounds, [*bounds[1:], width])))
    return spans if any(len(row) > 1 for row in spans) else None


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, segmented_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_segmented_attention(model) -> bool:
    """Switch every config of ``model`` that uses SDPA to segmented attention; True when one was switched."""
    register()
    switched = False
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
            config._attn_implementation = NAME
            switched = True
    return switched
