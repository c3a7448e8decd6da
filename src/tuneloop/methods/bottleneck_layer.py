"""The bottleneck adapter module itself: ``base(x) + up(gelu(down(base(x))))`` (see :mod:`tuneloop.methods.bottleneck`)."""

from __future__ import annotations

import torch

from tuneloop.methods.formulas import linear_shape


class BottleneckAdapter(torch.nn.Module):
    """``base(x) + up(gelu(down(base(x))))`` around a frozen linear layer."""

    def __init__(self, base: torch.nn.Module, bottleneck: int):
        super().__init__()
        _, width = linear_shape(base)
        weight = base.weight
        self.base = base
        self.down = torch.nn.Linear(width, bottleneck, device=weight.device, dtype=weight.dtype)
        self.act = torch.nn.GELU()
        self.up = torch.nn.Linear(bottleneck, width, device=weight.device, dtype=weight.dtype)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The wrapped layer's weight: model code reads it through the wrapper (T5 casts to its dtype)."""
        return self.base.weight

    def forward(self, x, *args, **kwargs):
        y = self.base(x, *args, **kwargs)
        return y + self.up(self.act(self.down(y)))
