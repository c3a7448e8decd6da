"""LoRA and its variants through peft: low-rank updates ``B @ A`` beside frozen linear weights.

``dora`` splits each weight into magnitude and direction and adapts the direction;
``rslora`` scales the update by ``alpha / sqrt(r)`` so larger ranks keep learning.
Trainable parameters per adapted ``d_out x d_in`` matrix: ``r * (d_in + d_out)``
(DoRA adds ``d_out`` magnitudes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneloop.errors import ConfigError
from tuneloop.methods.formulas import linear_layer_names, targeted_linear_shapes
from tuneloop.methods.settings import ContinuableSettings


class LoraSettings(ContinuableSettings):
    name: Literal["lora", "dora", "rslora"] = "lora"
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(32.0, gt=0, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")


def build_lora(model, cfg, task_type: str = "CAUSAL_LM", **variant):
    from peft import LoraConfig

    peft_config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type=task_type,
        **variant,
    )
    return wrap_with_peft(model, peft_config, cfg.target_modules)


def build_dora(model, cfg, task_type: str = "CAUSAL_LM"):
    return build_lora(model, cfg, task_type, use_dora=True)


def build_rslora(model, cfg, task_type: str = "CAUSAL_LM"):
    return build_lora(model, cfg, task_type, use_rslora=True)


def wrap_with_peft(model, peft_config, target_modules):
    """``get_peft_model`` with a clear error when the target modules match nothing."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        if "not found in the base model" not in str(err) and "Target modules" not in str(err):
            raise
        raise ConfigError(
            f"method.target_modules {target_modules!r} match no module of the model; "
            f"linear modules that exist: {', '.join(linear_layer_names(model))}"
        ) from None


def expected_lora_params(model, cfg, dora: bool = False) -> int:
    """LoRA: ``r * (d_in + d_out)`` per adapted matrix (A is r x d_in, B is d_out x r).

    DoRA adds one magnitude per output row (``d_out``); rsLoRA only changes the scaling.
    """
    total = 0
    for d_in, d_out in targeted_linear_shapes(model, cfg.target_modules).values():
        total += cfg.r * (d_in + d_out) + (d_out if dora else 0)
    return total


def expected_dora_params(model, cfg) -> int:
    return expected_lora_params(model, cfg, dora=True)
