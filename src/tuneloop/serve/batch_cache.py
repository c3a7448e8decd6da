"""The running batch's key/value cache: rows join (left-padded to a shared width), grow by one
column per decode step, and leave.

The cache is left-padded: every row's latest token sits in the last column, so one attention mask
(zeros on the padding) and per-row position ids describe the whole batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from transformers import DynamicCache

if TYPE_CHECKING:
    from tuneloop.serve.engine import Row


class RunningBatch:
    """The rows in flight, their shared left-padded key/value cache and attention mask."""

    def __init__(self):
        self.rows: list[Row] = []
        self.cache = None
        self.mask = None  # [rows, cached columns]: 1 on real tokens, 0 on left padding

    def merge(self, rows: list[Row], cache, mask) -> None:
        """Append newly prefilled rows: both sides are left-padded to the longer one's columns."""
        if not self.rows:
            self.rows, self.mask = list(rows), mask
            self.cache = cache_of([(layer.keys, layer.values) for layer in cache.layers])
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.cache = cache_of([
            (cat_left_padded(old.keys, new.keys, width), cat_left_padded(old.values, new.values, width))
            for old, new in zip(self.cache.layers, cache.layers)
        ])  # fmt: skip
        self.mask = cat_left_padded(self.mask, mask, width, dim=1)
        self.rows += rows

    def extend_mask(self) -> None:
        """One more real column: the token every row is about to feed in."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)

    def drop_finished(self) -> list[Row]:
        """Remove finished rows (and padding columns no row needs any more); returns the removed rows."""
        finished = [row for row in self.rows if row.done]
        if not finished:
            return []
        keep = [index for index, row in enumerate(self.rows) if not row.done]
        self.rows = [self.rows[index] for index in keep]
        if not self.rows:
            self.cache = self.mask = None
            return finished
        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask.index_select(0, index)
        first = int(self.mask.argmax(dim=1).min())  # the leftmost real column of any remaining row
        self.mask = self.mask[:, first:]
        self.cache = cache_of([
            (layer.keys.index_select(0, index)[:, :, first:, :], layer.values.index_select(0, index)[:, :, first:, :])
            for layer in self.cache.layers
        ])  # fmt: skip
        return finished


def cache_of(layers: list[tuple]):
    """A transformers ``DynamicCache`` holding these per-layer (keys, values).

    (Appending a token copies each layer's cache with ``torch.cat``; buffers with spare columns
    were tried and measured no faster on CPU: attention then copies the strided views instead.)
    """
    return DynamicCache(ddp_cache_data=layers)


def cat_left_padded(old, new, width: int, dim: int = 2):
    """Concatenate two row blocks along the batch dimension after left-padding each to ``width`` along ``dim``."""

    def pad(tensor):
        missing = width - tensor.shape[dim]
        if missing == 0:
            return tensor
        spec = [0, 0] * (tensor.dim() - 1 - dim) + [missing, 0]  # F.pad lists the last dimension first
        return F.pad(tensor, spec)

    return torch.cat([pad(old), pad(new)], dim=0)
