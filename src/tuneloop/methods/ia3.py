"""(IA)^3 through peft: learned vectors that rescale activations of chosen linear layers.

Attention-type modules get a vector over their output (``d_out``); feed-forward modules get one
over their input (``d_in``), as in the paper. For architectures peft knows, peft picks both lists;
an explicit ``method.target_modules`` list replaces the targets, and the architecture's known
feed-forward modules among them keep input-side scaling.
"""

from __future__ import annotations

from typing import Literal

from tuneloop.errors import ConfigError
from tuneloop.methods.formulas import linear_layer_names, module_matches, targeted_linear_shapes
from tuneloop.methods.lora import wrap_with_peft
from tuneloop.methods.settings import ContinuableSettings


class IA3Settings(ContinuableSettings):
    name: Literal["ia3"] = "ia3"


def default_ia3_modules(model) -> tuple[list[str] | None, list[str] | None]:
    """peft's own (target, feed-forward) module lists for this architecture, or ``(None, None)``."""
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
    )

    model_type = getattr(model.config, "model_type", None)
    return TARGETS.get(model_type), FEEDFORWARD.get(model_type)


def ia3_modules(model, cfg) -> tuple[list[str] | None, list[str] | None]:
    """The (target, feed-forward) lists to hand peft; None lets peft choose."""
    if not isinstance(cfg.target_modules, list):
        return None, None
    _, known_feedforward = default_ia3_modules(model)
    # peft demands feed-forward modules be a subset of the targets.
    feedforward = [name for name in cfg.target_modules if name in (known_feedforward or [])]
    return list(cfg.target_modules), feedforward


def build_ia3(model, cfg, task_type: str = "CAUSAL_LM"):
    from peft import IA3Config

    targets, feedforward = ia3_modules(model, cfg)
    if targets is None and default_ia3_modules(model)[0] is None:
        raise ConfigError(
            f"method.target_modules: peft knows no (IA)^3 modules for model type "
            f"{getattr(model.config, 'model_type', '?')!r}; give a list, e.g. the attention key/value and "
            f"feed-forward output projections among: {', '.join(linear_layer_names(model))}"
        )
    peft_config = IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type=task_type)
    return wrap_with_peft(model, peft_config, cfg.target_modules)


def expected_ia3_params(model, cfg) -> int:
    """One vector per adapted module: ``d_in`` for feed-forward modules, ``d_out`` otherwise."""
    targets, feedforward = ia3_modules(model, cfg)
    if targets is None:
        targets, feedforward = default_ia3_modules(model)
    total = 0
    for name, (d_in, d_out) in targeted_linear_shapes(model, targets).items():
        total += d_in if module_matches(name, feedforward) else d_out
    return total
