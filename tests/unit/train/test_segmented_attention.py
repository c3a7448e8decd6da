"""Per-example attention on packed rows must match SDPA with the block-diagonal mask, and step aside elsewhere."""

import torch

from tuneloop.models.load import load_causal_lm
from tuneloop.train import segmented_attention
from tuneloop.train.segmented_attention import NAME, example_spans, use_segmented_attention


def test_example_spans_follow_position_restarts():
    packed = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]])
    assert example_spans(packed) == [[(0, 3), (3, 5), (5, 6)], [(0, 4), (4, 6)]]
    assert example_spans(torch.tensor([[0, 1, 2, 3]])) is None  # one example: plain causal SDPA
    assert example_spans(torch.tensor([[1, 1, 0, 1, 2]])) is None  # left padding during generation
    assert example_spans(None) is None


def loss_and_grads(model, ids, positions):
    model.zero_grad()
    logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    return logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_segmented_attention_gives_masked_sdpa_logits_and_gradients(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir))
    ids = torch.randint(3, model.config.vocab_size, (2, 24))
    positions = torch.tensor([[*range(9), *range(11), *range(4)], [*range(5), *range(19)]])
    sdpa_logits, sdpa_grads = loss_and_grads(model, ids, positions)
    assert use_segmented_attention(model) and model.config._attn_implementation == NAME
    logits, grads = loss_and_grads(model, ids, positions)
    torch.testing.assert_close(logits, sdpa_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads, sdpa_grads, rtol=1e-4, atol=1e-6)


def test_generation_is_unchanged_by_segmented_attention(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir))
    prompts = torch.randint(3, model.config.vocab_size, (2, 6))
    mask = torch.ones_like(prompts)
    mask[1, :2] = 0  # left padding
    settings = {"attention_mask": mask, "max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        expected = model.generate(prompts, **settings)
        use_segmented_attention(model)
        generated = model.generate(prompts, **settings)
    assert torch.equal(generated, expected)


def test_example_spans_are_read_once_per_forward(tiny_model_dir, monkeypatch):
    model, _ = load_causal_lm(str(tiny_model_dir))
    use_segmented_attention(model)
    reads = []
    monkeypatch.setattr(segmented_attention, "example_spans", lambda ids: reads.append(1) or example_spans(ids))
    ids = torch.randint(3, model.config.vocab_size, (1, 10))
    with torch.no_grad():
        for _ in range(2):
            model(input_ids=ids, position_ids=torch.tensor([[*range(4), *range(6)]]), use_cache=False)
    assert model.config.num_hidden_layers > 1 and len(reads) == 2
