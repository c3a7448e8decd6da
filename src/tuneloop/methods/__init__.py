"""Fine-tuning methods: a name -> builder mapping. Adding a method is one file plus one line here.

A builder takes ``(model, MethodConfig, task_type)`` and returns the model ready to train, with
everything but the method's parameters frozen.
"""

from __future__ import annotations

from typing import Callable

from tuneloop.errors import ConfigError
from tuneloop.methods.lora import build_dora, build_lora, build_rslora

METHODS: dict[str, Callable] = {
    "lora": build_lora,
    "dora": build_dora,
    "rslora": build_rslora,
}


def apply_method(model, method_config, task_type: str = "CAUSAL_LM"):
    try:
        builder = METHODS[method_config.name]
    except KeyError:
        raise ConfigError(
            f"method.name: unknown method {method_config.name!r}; choose one of {', '.join(sorted(METHODS))}"
        ) from None
    return builder(model, method_config, task_type)
