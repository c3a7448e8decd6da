"""Fine-tuning methods: a name -> :class:`Method` mapping. Adding a method is one file plus one line here.

A builder takes ``(model, MethodConfig, task_type)`` and returns the model ready to train, with
everything but the method's parameters frozen. ``save``/``load`` write and restore what the
method trained; ``packs`` says whether examples may share a row (methods that prepend virtual
tokens lose ``position_ids`` inside peft, so they train on padded rows). ``learning_rate`` is
the method's usual peak rate: methods that move few parameters far from the output need much
larger steps than full fine-tuning, so ``compare`` uses it unless the user set one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tuneloop.errors import ConfigError
from tuneloop.methods.artifacts import load_bottleneck_artifact, load_full_model, load_peft_adapter, save_bottleneck_artifact, save_full_model, save_peft_adapter
from tuneloop.methods.bottleneck import build_adapter
from tuneloop.methods.freeze import build_freeze
from tuneloop.methods.full import build_full
from tuneloop.methods.ia3 import build_ia3
from tuneloop.methods.lora import build_dora, build_lora, build_rslora
from tuneloop.methods.prompt_learning import build_prefix, build_prompt, build_ptuning


@dataclass(frozen=True)
class Method:
    build: Callable  # (model, MethodConfig, task_type) -> trainable model
    save: Callable = save_peft_adapter  # (model, folder) -> None
    load: Callable = load_peft_adapter  # (base_model, folder) -> model
    artifact: str = "adapter"  # folder name inside the run
    packs: bool = True
    learning_rate: float = 1e-3


METHODS: dict[str, Method] = {
    "lora": Method(build_lora, learning_rate=2e-3),
    "dora": Method(build_dora, learning_rate=2e-3),
    "rslora": Method(build_rslora, learning_rate=1e-3),  # alpha/sqrt(r) scales updates up by sqrt(r)
    "ia3": Method(build_ia3, learning_rate=1e-2),
    "prefix": Method(build_prefix, packs=False, learning_rate=1e-2),
    "prompt": Method(build_prompt, packs=False, learning_rate=3e-2),
    "ptuning": Method(build_ptuning, packs=False, learning_rate=1e-2),
    "adapter": Method(build_adapter, save=save_bottleneck_artifact, load=load_bottleneck_artifact),
    "full": Method(build_full, save=save_full_model, load=load_full_model, artifact="model", learning_rate=5e-5),
    "freeze": Method(build_freeze, save=save_full_model, load=load_full_model, artifact="model", learning_rate=1e-4),
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"method.name: unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}") from None


def apply_method(model, method_config, task_type: str = "CAUSAL_LM"):
    return get_method(method_config.name).build(model, method_config, task_type)
