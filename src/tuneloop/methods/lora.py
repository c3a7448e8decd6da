"""LoRA and its variants through peft: low-rank updates ``B @ A`` beside frozen linear weights.

``dora`` splits each weight into magnitude and direction and adapts the direction;
``rslora`` scales the update by ``alpha / sqrt(r)`` so larger ranks keep learning.
Trainable parameters per adapted ``d_out x d_in`` matrix: ``r * (d_in + d_out)``
(DoRA adds ``d_out`` magnitudes).
"""

from __future__ import annotations

from tuneloop.errors import ConfigError
from tuneloop.methods.formulas import linear_layer_names


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
