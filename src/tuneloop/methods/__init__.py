"""Fine-tuning methods: a name -> builder mapping. Adding a method is one file plus one line here.

A builder takes ``(model, MethodConfig, task_type)`` and returns the model ready to train, with
everything but the method's parameters frozen.
"""

from __future__ import annotations

from typing import Callable

from tuneloop.errors import ConfigError
from tuneloop.methods.bottleneck import build_adapter
from tuneloop.methods.freeze import build_freeze
from tuneloop.methods.full import build_full
from tuneloop.methods.ia3 import build_ia3
from tuneloop.methods.lora import build_dora, build_lora, build_rslora
from tuneloop.methods.prompt_learning import build_prefix, build_prompt, build_ptuning

METHODS: dict[str, Callable] = {
    "lora": build_lora,
    "dora": build_dora,
    "rslora": build_rslora,
    "full": build_full,
    "freeze": build_freeze,
    "ia3": build_ia3,
    "prefix": build_prefix,
    "prompt": build_prompt,
    "ptuning": build_ptuning,
    "adapter": build_adapter,
}


def apply_method(model, method_config, task_type: str = "CAUSAL_LM"):
    try:
        builder = METHODS[method_config.name]
    except KeyError:
        raise ConfigError(
            f"method.name: unknown method {method_config.name!r}; choose one of {', '.join(sorted(METHODS))}"
        ) from None
    return builder(model, method_config, task_type)
