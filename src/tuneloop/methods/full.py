"""Full fine-tuning: every weight of the model is trained."""

from __future__ import annotations

from typing import Literal

from tuneloop.methods.settings import MethodSettings


class FullSettings(MethodSettings):
    name: Literal["full"] = "full"


def build_full(model, cfg=None, task_type: str = "CAUSAL_LM"):
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def expected_full_params(model, cfg=None) -> int:
    """All parameters (tied weights counted once, as ``model.parameters()`` does)."""
    return sum(parameter.numel() for parameter in model.parameters())
