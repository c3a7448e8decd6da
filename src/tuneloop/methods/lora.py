"""LoRA through peft: low-rank updates ``B @ A`` beside frozen linear weights."""

from __future__ import annotations

from tuneloop.errors import ConfigError


def build_lora(model, cfg, task_type: str = "CAUSAL_LM"):
    from peft import LoraConfig, get_peft_model

    peft_config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type=task_type,
    )
    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        if "not found in the base model" not in str(err) and "Target modules" not in str(err):
            raise
        raise ConfigError(
            f"method.target_modules {cfg.target_modules!r} match no module of the model; "
            f"linear modules that exist: {', '.join(linear_module_names(model))}"
        ) from None


def linear_module_names(model) -> list[str]:
    """Distinct leaf names of the model's linear layers (what ``target_modules`` matches)."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    return sorted(names)
