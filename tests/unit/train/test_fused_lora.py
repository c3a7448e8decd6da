"""The fused LoRA forward must give peft's outputs and gradients, and step aside where it does not apply."""

import torch

from tuneloop.methods import method_settings
from tuneloop.methods import apply_method
from tuneloop.models.load import load_causal_lm
from tuneloop.train.fused_lora import fuse_lora_layers


def lora_model(tiny_model_dir, **settings):
    model, _ = load_causal_lm(str(tiny_model_dir))
    torch.manual_seed(0)
    model = apply_method(model, method_settings("lora", r=4, alpha=8, target_modules="all-linear", **settings))
    for name, param in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero, which would hide a wrong B path
            torch.nn.init.normal_(param, std=0.02)
    return model


def loss_and_grads(model, ids):
    model.zero_grad()
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_fused_lora_gives_peft_outputs_and_gradients(tiny_model_dir):
    model = lora_model(tiny_model_dir)
    ids = torch.randint(3, model.config.vocab_size, (2, 12))
    peft_loss, peft_grads = loss_and_grads(model, ids)
    assert fuse_lora_layers(model) == sum(1 for n, _ in model.named_modules() if n.endswith("_proj") and ".lora" not in n)
    fused_loss, fused_grads = loss_and_grads(model, ids)
    torch.testing.assert_close(fused_loss, peft_loss, rtol=1e-5, atol=1e-6)
    assert fused_grads.keys() == peft_grads.keys() and any("lora_A" in n for n in fused_grads)
    for name in peft_grads:
        torch.testing.assert_close(fused_grads[name], peft_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fused_lora_steps_aside_for_disabled_adapters(tiny_model_dir):
    model = lora_model(tiny_model_dir)
    ids = torch.randint(3, model.config.vocab_size, (1, 8))
    with torch.no_grad():
        with model.disable_adapter():
            base = model(input_ids=ids).logits
        fuse_lora_layers(model)
        with model.disable_adapter():
            fused_base = model(input_ids=ids).logits
        adapted = model(input_ids=ids).logits
    torch.testing.assert_close(fused_base, base)
    assert not torch.allclose(adapted, base, atol=1e-4)


def test_fused_lora_leaves_dropout_to_peft(tiny_model_dir):
    model = lora_model(tiny_model_dir, dropout=0.5)
    model.train()
    ids = torch.randint(3, model.config.vocab_size, (1, 8))
    torch.manual_seed(1)
    peft_logits = model(input_ids=ids).logits
    fuse_lora_layers(model)
    torch.manual_seed(1)
    fused_logits = model(input_ids=ids).logits
    torch.manual_seed(2)
    other_mask = model(input_ids=ids).logits
    torch.testing.assert_close(fused_logits, peft_logits)
    assert not torch.allclose(other_mask, peft_logits)  # dropout is live, so equality above means peft's path ran
