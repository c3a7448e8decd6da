"""Trainable-parameter counts that a method should produce, computed from the *base* model.

These are independent re-statements of each method's arithmetic, used by the contract test to
catch a builder that trains more (or less) than it claims. Target matching follows peft's rules:
a list matches a module whose name equals an entry or ends with ``"." + entry``; any other string
is a regex that must match the whole name; ``"all-linear"`` is every linear layer but the output one.
"""

from __future__ import annotations

import re


def module_matches(name: str, targets) -> bool:
    """peft's rule for whether the module called ``name`` is one of ``targets``."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == target or name.endswith("." + target) for target in targets)


def linear_shape(module) -> tuple[int, int] | None:
    """``(d_in, d_out)`` of a linear layer (``nn.Linear`` or GPT-2's transposed ``Conv1D``), else None."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # weight stored as [d_in, d_out]
        d_in, d_out = module.weight.shape
        return d_in, d_out
    return None


def linear_layer_names(model) -> list[str]:
    """Distinct leaf names of the linear layers, GPT-2's ``Conv1D`` included (for error messages)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if linear_shape(module)})


def targeted_linear_shapes(model, targets) -> dict[str, tuple[int, int]]:
    """Name -> ``(d_in, d_out)`` of every linear layer the target spec selects."""
    output_layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    shapes = {}
    for name, module in model.named_modules():
        shape = linear_shape(module)
        if shape is None:
            continue
        if targets == "all-linear":
            selected = module is not output_layer
        else:
            selected = module_matches(name, targets)
        if selected:
            shapes[name] = shape
    return shapes
