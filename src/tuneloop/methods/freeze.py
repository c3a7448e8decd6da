"""Partial fine-tuning: train only the last few transformer blocks and what sits after them.

The block list is found generically as the model's longest ``nn.ModuleList`` (``model.layers``,
``encoder.layer``, ``transformer.h`` ...). Parameters registered after it are the final norm, the
pooler and the task head (``lm_head``, ``classifier``, ``score``). A causal LM's ``lm_head`` is
usually tied to the input embeddings; ``named_parameters`` lists a shared tensor once, under the
embedding's name, so tied embeddings are never unfrozen here unless ``trainable_modules`` asks.
"""

from __future__ import annotations

from tuneloop.errors import ConfigError


def find_block_list(model) -> tuple[str, object]:
    """Qualified name and module of the longest ``nn.ModuleList`` (the transformer blocks)."""
    import torch

    lists = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.ModuleList)]
    if not lists:
        raise ConfigError(
            f"method.name: found no list of transformer blocks (torch.nn.ModuleList) in {type(model).__name__}; "
            "freeze and adapter need one"
        )
    return max(lists, key=lambda item: len(item[1]))


def trainable_parameter_names(model, trainable_layers: int, trainable_modules: list[str]) -> set[str]:
    """Names of the parameters ``freeze`` trains."""
    blocks_name, blocks = find_block_list(model)
    first_trained = max(len(blocks) - trainable_layers, 0)
    trained_prefixes = tuple(f"{blocks_name}.{index}." for index in range(first_trained, len(blocks)))
    input_embedding = model.get_input_embeddings().weight
    names, past_blocks = set(), False
    for name, parameter in model.named_parameters():
        in_blocks = name.startswith(blocks_name + ".")
        past_blocks = past_blocks or in_blocks
        # A head tied to the embeddings is listed once, under the embedding's name; never train it here.
        after_blocks = past_blocks and not in_blocks and parameter is not input_embedding
        if name.startswith(trained_prefixes) or after_blocks or any(key in name for key in trainable_modules):
            names.add(name)
    return names


def build_freeze(model, cfg, task_type: str = "CAUSAL_LM"):
    trained = trainable_parameter_names(model, cfg.trainable_layers, cfg.trainable_modules)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trained)
    return model
