"""Partial fine-tuning: train only the last few transformer blocks and what sits after them.

The block list is found generically as the model's longest ``nn.ModuleList`` (``model.layers``,
``encoder.layer``, ``transformer.h`` ...). Parameters registered after it are the final norm, the
pooler and the task head (``lm_head``, ``classifier``, ``score``). A causal LM's ``lm_head`` is
usually tied to the input embeddings; ``named_parameters`` lists a shared tensor once, under the
embedding's name, so tied embeddings are never unfrozen here unless ``trainable_modules`` asks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneloop.errors import ConfigError
from tuneloop.methods.settings import MethodSettings


class FreezeSettings(MethodSettings):
    name: Literal["freeze"] = "freeze"
    trainable_layers: int = Field(2, ge=0, description="freeze: train only the last N transformer blocks (plus the head).")
    trainable_modules: list[str] = Field(
        default_factory=list, description="freeze: also train parameters whose names contain any of these."
    )


def find_block_stacks(model) -> list[tuple[str, object]]:
    """Qualified name and module of every stack of transformer blocks, in model order.

    A stack is an ``nn.ModuleList`` not nested in another one: a decoder-only model or an encoder
    has one, an encoder-decoder (T5, BART) has two, and the per-block lists inside (T5's
    ``block.N.layer``) are not stacks.
    """
    import torch

    lists = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.ModuleList)]
    stacks = [(name, module) for name, module in lists if not any(name.startswith(other + ".") for other, _ in lists)]
    if not stacks:
        raise ConfigError(
            f"method.name: found no list of transformer blocks (torch.nn.ModuleList) in {type(model).__name__}; "
            "freeze and adapter need one"
        )
    return stacks


def trainable_parameter_names(model, trainable_layers: int, trainable_modules: list[str]) -> set[str]:
    """Names of the parameters ``freeze`` trains: the last ``trainable_layers`` blocks of every stack,
    what follows each stack inside its parent (a final norm), everything after the last stack (a
    head), and any parameter whose name contains one of ``trainable_modules``."""
    stacks = find_block_stacks(model)
    trained_prefixes, stack_parents = [], []
    for stack_name, blocks in stacks:
        first_trained = max(len(blocks) - trainable_layers, 0)
        trained_prefixes += [f"{stack_name}.{index}." for index in range(first_trained, len(blocks))]
        stack_parents.append(stack_name.rpartition(".")[0])
    input_embedding = model.get_input_embeddings().weight
    names, stacks_passed = set(), 0
    for name, parameter in model.named_parameters():
        while stacks_passed < len(stacks) and name.startswith(stacks[stacks_passed][0] + "."):
            stacks_passed += 1
        current = stacks_passed - 1
        in_stack = current >= 0 and name.startswith(stacks[current][0] + ".")
        after_own_stack = current >= 0 and not in_stack and (
            current == len(stacks) - 1 or name.startswith(stack_parents[current] + ".")
        )
        # A head tied to the embeddings is listed once, under the embedding's name; never train it here.
        follows_stack = after_own_stack and parameter is not input_embedding
        if name.startswith(tuple(trained_prefixes)) or follows_stack or any(key in name for key in trainable_modules):
            names.add(name)
    return names


def build_freeze(model, cfg, task_type: str = "CAUSAL_LM"):
    trained = trainable_parameter_names(model, cfg.trainable_layers, cfg.trainable_modules)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trained)
    return model


def expected_freeze_params(model, cfg) -> int:
    """All parameters less what stays frozen: everything registered before the first block stack
    (the embeddings) and the blocks before the last ``trainable_layers`` of every stack."""
    stacks = find_block_stacks(model)
    first_stack = stacks[0][0] + "."
    names = [name for name, _ in model.named_parameters()]
    before = set(names[: next(i for i, name in enumerate(names) if name.startswith(first_stack))])
    frozen_blocks = [block for _, blocks in stacks for block in list(blocks)[: max(len(blocks) - cfg.trainable_layers, 0)]]
    frozen = sum(p.numel() for name, p in model.named_parameters() if name in before)
    frozen += sum(p.numel() for block in frozen_blocks for p in block.parameters())
    return sum(p.numel() for p in model.parameters()) - frozen
