"""Fine-tuning methods: a name -> :class:`Method` mapping, the one source of what a method can do.

Adding a method is one module (its settings model, builder and parameter formula) plus one entry
here; the config schema, the flags, ``compare``'s default list, the serving and merging checks
and the contract test all read this mapping.

A builder takes ``(model, settings, task_type)`` and returns the model ready to train, with
everything but the method's parameters frozen. ``save``/``load`` write and restore what the
method trained. ``learning_rate`` is the method's usual peak rate: methods that move few
parameters far from the output need much larger steps than full fine-tuning, so ``compare`` and
``tune`` use it unless the user set one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tuneloop.errors import ConfigError
from tuneloop.methods.artifacts import load_bottleneck_artifact, load_full_model, load_peft_adapter, save_bottleneck_artifact, save_full_model, save_peft_adapter
from tuneloop.methods.bottleneck import BottleneckSettings, build_adapter, expected_bottleneck_params
from tuneloop.methods.freeze import FreezeSettings, build_freeze, expected_freeze_params
from tuneloop.methods.full import FullSettings, build_full, expected_full_params
from tuneloop.methods.ia3 import IA3Settings, build_ia3, expected_ia3_params
from tuneloop.methods.lora import LoraSettings, build_dora, build_lora, build_rslora, expected_dora_params, expected_lora_params
from tuneloop.methods.prompt_learning import PromptLearningSettings, build_prefix, build_prompt, build_ptuning, expected_prefix_params, expected_prompt_params, expected_ptuning_params
from tuneloop.methods.settings import MethodSettings


def rate_range(usual: float) -> dict:
    """A log-scale learning-rate range around a method's usual rate, for ``tune``'s default space."""
    return {"low": usual / 10, "high": usual * 3, "log": True}


@dataclass(frozen=True)
class Method:
    build: Callable  # (model, settings, task_type) -> trainable model
    settings: type[MethodSettings]  # the ``method:`` section this method reads
    trainable_params: Callable  # (base model, settings) -> parameters the builder must leave trainable
    save: Callable = save_peft_adapter  # (model, folder) -> None
    load: Callable = load_peft_adapter  # (base_model, folder) -> model
    artifact: str = "adapter"  # folder name inside the run
    packs: bool = True  # False: virtual tokens lose position_ids inside peft, so rows are padded, not packed
    learning_rate: float = 1e-3
    switchable: bool = False  # a peft adapter on a frozen base: switched off it is the base (KL replay), or trained further
    mixable: bool = False  # rows of one served batch may each use a different adapter of this method
    mergeable: bool = False  # adapters of this method combine into one (``tuneloop merge``)
    capacity: dict = field(default_factory=dict)  # tune's default search over the method's own settings
    # Opacus computes a correct per-example gradient of every parameter it trains, so DP-SGD can clip
    # it (tests/unit/train/test_dp_sgd.py checks each against per-example autograd). Not: dora and ia3
    # (layers Opacus cannot differentiate per example), prompt and ptuning (one virtual-token
    # gradient shared by the whole batch).
    per_example_grads: bool = False

    def packs_with(self, task) -> bool:
        """Whether examples may share a row: the method and the task must both allow it."""
        return self.packs and task.packs

    def search_space(self) -> dict[str, dict]:
        """``tune.space`` when the user gives none: the learning rate around the usual one, and capacity."""
        return {"train.learning_rate": rate_range(self.learning_rate), **self.capacity}


LORA_CAPACITY = {"method.r": {"choices": [4, 8, 16, 32]}}
PEFT = {"switchable": True}

METHODS: dict[str, Method] = {
    "lora": Method(build_lora, LoraSettings, expected_lora_params, learning_rate=2e-3, mixable=True, mergeable=True, capacity=LORA_CAPACITY, **PEFT, per_example_grads=True),
    # DoRA's magnitude vectors cannot be mixed per row in peft, nor merged with other adapters.
    "dora": Method(build_dora, LoraSettings, expected_dora_params, learning_rate=2e-3, capacity=LORA_CAPACITY, **PEFT),
    # alpha/sqrt(r) scales updates up by sqrt(r)
    "rslora": Method(build_rslora, LoraSettings, expected_lora_params, learning_rate=1e-3, mixable=True, mergeable=True, capacity=LORA_CAPACITY, **PEFT, per_example_grads=True),
    "ia3": Method(build_ia3, IA3Settings, expected_ia3_params, learning_rate=1e-2, **PEFT),
    "prefix": Method(build_prefix, PromptLearningSettings, expected_prefix_params, packs=False, learning_rate=1e-2, capacity={"method.num_virtual_tokens": {"choices": [8, 16, 32]}}, per_example_grads=True),
    "prompt": Method(build_prompt, PromptLearningSettings, expected_prompt_params, packs=False, learning_rate=3e-2, capacity={"method.num_virtual_tokens": {"choices": [8, 16, 32]}}),
    "ptuning": Method(build_ptuning, PromptLearningSettings, expected_ptuning_params, packs=False, learning_rate=1e-2, capacity={"method.num_virtual_tokens": {"choices": [8, 16, 32]}}),
    "adapter": Method(build_adapter, BottleneckSettings, expected_bottleneck_params, save=save_bottleneck_artifact, load=load_bottleneck_artifact, capacity={"method.bottleneck": {"choices": [16, 32, 64, 128]}}, per_example_grads=True),
    "full": Method(build_full, FullSettings, expected_full_params, save=save_full_model, load=load_full_model, artifact="model", learning_rate=5e-5, per_example_grads=True),
    "freeze": Method(build_freeze, FreezeSettings, expected_freeze_params, save=save_full_model, load=load_full_model, artifact="model", learning_rate=1e-4, capacity={"method.trainable_layers": {"choices": [1, 2, 4]}}, per_example_grads=True),
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"method.name: unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}") from None


def methods_where(capability: str) -> tuple[str, ...]:
    """Names of the methods with ``capability`` (``switchable``, ``mixable``, ``mergeable``), in registry order."""
    return tuple(name for name, method in METHODS.items() if getattr(method, capability))


def method_settings(name: str, **values):
    """The settings of method ``name`` (its defaults, with ``values``); ConfigError for an unknown method."""
    return get_method(name).settings(name=name, **values)


def apply_method(model, settings, task_type: str = "CAUSAL_LM"):
    return get_method(settings.name).build(model, settings, task_type)
