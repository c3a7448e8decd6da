"""The dpo task's fast paths give the plain path's numbers: the packed row (prompt read once, no padding,
per-pair attention), the fused head log-probs, and the kept reference log-probs; values and gradients in fp32."""

from __future__ import annotations

import pytest
import torch

from tuneloop.config import load_config
from tuneloop.data.schema import Example
from tuneloop.losses.dpo_pairs import HeadLogProbs, pack_pairs, packed_completion_log_probs
from tuneloop.methods import apply_method, method_settings
from tuneloop.objectives.dpo import DPO, DpoLoss, completion_log_probs

PAIRS = [
    ("Ticket 12: the dashboard is down.", "Thank you, we are on it (ticket 12).", "Not our problem."),
    ("Ticket 7: refund please.", "Sorry for the trouble; refund for ticket 7 is on its way, within five days.", "No."),
    ("Ticket 3: login fails after password reset, please help!", "Thanks for writing in.", "Read the docs, as we said."),
    ("Hi", "Hello! How can I help with your account today?", "What."),
]
BETA = 0.3


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    config = load_config(None, {"model.name": str(tiny_model_dir), "task": "dpo", "data.format": "pairs"})
    torch.manual_seed(0)
    model = apply_method(DPO.load_model(config.model, None), method_settings("lora", r=4), "CAUSAL_LM")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)  # the policy moved off its reference
    tokenizer = DPO.load_tokenizer(config.model)
    pairs = [DPO.tokenize(tokenizer, Example("p", i, prompt=p, chosen=c, rejected=r), None) for i, (p, c, r) in enumerate(PAIRS)]
    return model.train(), DPO.collate(DPO.batch_rows(pairs, False, 128, 0), tokenizer.pad_token_id)


def assert_same_gradients(fast: dict, plain: dict) -> None:
    """Each parameter's gradient within 1e-5 of its norm (fp32 sums over the two layouts differ in order)."""
    for name, grad in plain.items():
        error = float((fast[name] - grad).norm() / grad.norm().clamp_min(1e-12))
        assert error < 1e-5, f"{name}: relative error {error:.2e}"


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


def test_the_packed_row_holds_each_prompt_once_and_no_padding(policy):
    _, batch = policy
    packed = pack_pairs(batch)
    pairs = len(PAIRS)
    real = int(batch["attention_mask"].sum())
    prompts = sum(p for _, p, _, _ in packed.layout.pairs)
    assert packed.input_ids.shape == (1, real - prompts) == (1, packed.layout.total)
    assert len(packed.targets) == int(batch["completion_mask"].sum())
    for slot, (offset, p, c, r) in enumerate(packed.layout.pairs):
        assert packed.position_ids[0, offset + p + c : offset + p + c + r].tolist() == list(range(p, p + r))
        assert torch.equal(packed.input_ids[0, offset : offset + p + c], batch["input_ids"][slot, : p + c])
        assert torch.equal(packed.input_ids[0, offset + p + c : offset + p + c + r], batch["input_ids"][pairs + slot, p : p + r])


def test_packed_log_probs_and_their_gradients_are_the_plain_ones(policy):
    model, batch = policy
    plain = completion_log_probs(model, batch)
    plain_grads = gradients(model, (plain * torch.linspace(-1, 1, len(plain))).sum())
    fast = packed_completion_log_probs(model, batch)
    assert fast is not None
    fast_grads = gradients(model, (fast * torch.linspace(-1, 1, len(fast))).sum())
    torch.testing.assert_close(fast.detach(), plain.detach(), rtol=1e-5, atol=1e-4)
    assert_same_gradients(fast_grads, plain_grads)


def test_the_fast_loss_and_gradients_are_the_plain_loss_and_gradients(policy):
    model, batch = policy
    plain_sum, plain_pairs = DPO.summed_loss(model, batch, beta=BETA)
    plain_grads = gradients(model, plain_sum)
    loss = DpoLoss(BETA)
    for _ in range(2):  # the second time from the kept reference log-probs
        fast_sum, fast_pairs = loss(model, batch)
        fast_grads = gradients(model, fast_sum)
        assert fast_pairs == plain_pairs == len(PAIRS)
        assert float(fast_sum.detach()) == pytest.approx(float(plain_sum.detach()), rel=1e-5)
        assert_same_gradients(fast_grads, plain_grads)
    assert len(loss.reference) == 2 * len(PAIRS)


def test_kept_reference_log_probs_are_those_a_new_pass_gives(policy, monkeypatch):
    model, batch = policy
    loss = DpoLoss(BETA, fused=False)
    first = loss.reference_log_probs(model, batch)
    calls = []
    monkeypatch.setattr(loss, "log_probs", lambda *args, **kwargs: calls.append(args) or torch.zeros(0))
    assert torch.equal(loss.reference_log_probs(model, batch), first) and not calls  # no reference pass
    fresh = DpoLoss(BETA, fused=False, keep_reference=False).reference_log_probs(model, batch)
    torch.testing.assert_close(first, fresh)


def test_a_batch_with_some_pairs_known_runs_the_reference_on_the_others_only(policy):
    model, batch = policy
    loss = DpoLoss(BETA)
    whole = loss.reference_log_probs(model, batch)
    half = {key: value for i, (key, value) in enumerate(loss.reference.items()) if i % 4 in (0, 1)}
    loss.reference = half  # forget some sequences
    torch.testing.assert_close(loss.reference_log_probs(model, batch), whole, rtol=1e-5, atol=1e-4)
    assert len(loss.reference) == 2 * len(PAIRS)


def test_the_fused_head_log_probs_and_gradient(policy):
    torch.manual_seed(1)
    hidden = torch.randn(7, 16, requires_grad=True)
    weight, bias, targets = torch.randn(50, 16), torch.randn(50), torch.randint(0, 50, (7,))
    scale = torch.randn(7)
    plain = torch.nn.functional.linear(hidden, weight, bias).log_softmax(-1).gather(1, targets[:, None]).squeeze(1)
    (plain_grad,) = torch.autograd.grad((plain * scale).sum(), hidden)
    fused = HeadLogProbs.apply(hidden, weight, bias, targets)
    (fused_grad,) = torch.autograd.grad((fused * scale).sum(), hidden)
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(fused_grad, plain_grad)


def test_eager_attention_falls_back_to_the_plain_path(policy):
    model, batch = policy
    configs = {id(m.config): m.config for m in model.modules() if getattr(m, "config", None) is not None}
    saved = {key: config._attn_implementation for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = "eager"
        assert packed_completion_log_probs(model, batch) is None
        summed, _ = DpoLoss(BETA)(model, batch)  # the plain path
        torch.testing.assert_close(summed, DPO.summed_loss(model, batch, beta=BETA)[0])
    finally:
        for key, config in configs.items():
            config._attn_implementation = saved[key]
