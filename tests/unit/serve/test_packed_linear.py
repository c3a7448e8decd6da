"""Packed linear layers give F.linear's outputs in inference and step aside when they must."""

from __future__ import annotations

import pytest
import torch

from tuneloop.serve.packed_linear import pack_linear_weights, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN linear")


def test_packed_model_matches_the_plain_one_and_peft_wraps_it(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    packed = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert pack_linear_weights(packed) == sum(type(m) is torch.nn.Linear for m in packed.modules())
    ids = torch.randint(5, 300, (3, 11))
    with torch.no_grad():
        torch.testing.assert_close(packed(input_ids=ids).logits, plain(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    adapted_plain, adapted_packed = get_peft_model(plain, config), None
    torch.manual_seed(0)
    adapted_packed = get_peft_model(packed, config)
    with torch.no_grad():
        torch.testing.assert_close(adapted_packed(input_ids=ids).logits, adapted_plain(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def test_training_and_changed_weights_take_the_ordinary_path():
    layer = torch.nn.Linear(16, 8)
    pack_linear_weights(layer)
    x = torch.randn(4, 16, requires_grad=True)
    layer(x).sum().backward()  # gradients flow: the packed kernel has none
    assert layer.weight.grad is not None and x.grad is not None
    with torch.no_grad():
        layer.weight.mul_(2.0)  # changed in place after packing
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
