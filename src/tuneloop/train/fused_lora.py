"""A LoRA linear layer in two matmuls and no extra element-wise passes.

peft computes ``base(x) + lora_B(lora_A(dropout(x))) * scaling``: besides the three matmuls, a
pass scaling the ``[tokens, out]`` LoRA output and another adding it, each with its own pass
again in the backward. Folding both into one ``addmm`` (``out + scaling * (x A^T) B^T``, the
product accumulated straight into the base output) removes them. The parameters stay peft's own,
so saving, loading and merging are unchanged; a layer in any state this does not cover (a DoRA
variant, dropout, several or disabled adapters, merged weights) runs peft's own forward.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


def fuse_lora_layers(model) -> int:
    """Give every peft LoRA ``Linear`` of ``model`` the fused forward; returns how many."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    fused = 0
    for module in model.modules():
        if type(module) is LoraLinear and type(module.base_layer) is torch.nn.Linear and not hasattr(module, "peft_forward"):
            module.peft_forward = module.forward
            module.forward = types.MethodType(fused_forward, module)
            fused += 1
    return fused


def fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    adapter = plain_single_adapter(self)
    if args or kwargs or adapter is None:
        return self.peft_forward(x, *args, **kwargs)
    lora_a, lora_b = self.lora_A[adapter].weight, self.lora_B[adapter].weight
    mixed_dtypes = x.dtype != lora_a.dtype and not torch.is_autocast_enabled(x.device.type)  # autocast casts them
    if mixed_dtypes or self.lora_B[adapter].bias is not None:
        return self.peft_forward(x)
    flat = x.reshape(-1, x.shape[-1])
    out = F.linear(flat, self.base_layer.weight, self.base_layer.bias)
    out = torch.addmm(out, flat @ lora_a.T, lora_b.T, alpha=self.scaling[adapter])
    return out.view(*x.shape[:-1], out.shape[-1])


def plain_single_adapter(layer) -> str | None:
    """The one active adapter when it is vanilla LoRA without dropout on unmerged weights, else None."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in layer.lora_variant or not isinstance(layer.lora_dropout[name], torch.nn.Identity):
        return None
    return name
