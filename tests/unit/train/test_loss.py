"""Label-only loss and packing must not change the maths."""

import torch
import torch.nn.functional as F

from tuneloop.data.schema import Example
from tuneloop.models.load import load_causal_lm
from tuneloop.losses.label_loss import summed_label_loss
from tuneloop.text.tokenize import PackedRow, collate_packed, tokenize_chat


def examples(tokenizer, n=4):
    out = []
    for i in range(n):
        ex = Example("f", i + 1, messages=({"role": "user", "content": "colour of item %d? " % i * (i + 1)}, {"role": "assistant", "content": "red " * (i + 1)}))
        out.append(tokenize_chat(tokenizer, ex))
    return out


def full_logits_loss(model, input_ids, labels):
    logits = model(input_ids=input_ids).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")


def test_label_only_loss_equals_full_logits_loss(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    example = examples(tokenizer, 1)[0]
    ids = torch.tensor([example.input_ids])
    labels = torch.tensor([example.labels])
    positions = torch.arange(ids.shape[1])[None]
    ours, count = summed_label_loss(model, {"input_ids": ids, "position_ids": positions, "labels": labels})
    assert count == example.label_count
    torch.testing.assert_close(ours, full_logits_loss(model, ids, labels), rtol=1e-5, atol=1e-5)


def per_example_losses_and_grads(model, batches):
    losses, grads = [], []
    for batch in batches:
        model.zero_grad()
        loss, _ = summed_label_loss(model, {k: v for k, v in batch.items() if k != "real_tokens"})
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    return torch.stack(losses), grads


def test_packed_equals_unpacked_losses_and_gradients(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    items = examples(tokenizer, 4)
    single = [collate_packed([PackedRow.from_examples([e])], tokenizer.pad_token_id) for e in items]
    unpacked_losses, unpacked_grads = per_example_losses_and_grads(model, single)
    packed = collate_packed([PackedRow.from_examples(items)], tokenizer.pad_token_id)
    packed_loss, packed_grads = per_example_losses_and_grads(model, [packed])
    torch.testing.assert_close(packed_loss[0], unpacked_losses.sum(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed_grads[0], torch.stack(unpacked_grads).sum(0), rtol=1e-5, atol=1e-5)


def test_packed_rows_do_not_attend_across_examples(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    a, b = examples(tokenizer, 2)
    alone = collate_packed([PackedRow.from_examples([b])], tokenizer.pad_token_id)
    together = collate_packed([PackedRow.from_examples([a, b])], tokenizer.pad_token_id)
    with torch.no_grad():
        logits_alone = model(input_ids=alone["input_ids"], position_ids=alone["position_ids"], use_cache=False).logits[0]
        logits_together = model(input_ids=together["input_ids"], position_ids=together["position_ids"], use_cache=False).logits[0, len(a):]
    torch.testing.assert_close(logits_together, logits_alone, rtol=1e-5, atol=1e-5)


def test_padded_loss_equals_packed_loss(tiny_model_dir):
    from tuneloop.text.tokenize import collate_padded

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    items = examples(tokenizer, 3)
    packed = collate_packed([PackedRow.from_examples(items)], tokenizer.pad_token_id)
    padded = collate_padded(items, tokenizer.pad_token_id)
    packed.pop("real_tokens"), padded.pop("real_tokens")
    with torch.no_grad():
        packed_sum, packed_count = summed_label_loss(model, packed)
        padded_sum, padded_count = summed_label_loss(model, padded)
    assert packed_count == padded_count
    torch.testing.assert_close(padded_sum, packed_sum, rtol=1e-5, atol=1e-5)


def test_fused_head_loss_and_gradients_equal_plain_logits_over_many_chunks(tiny_model_dir, monkeypatch):
    from tuneloop.losses import label_loss as loss, linear_ce

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    assert linear_ce.fusable_head(model) is model.get_output_embeddings()
    batch = collate_packed([PackedRow.from_examples(examples(tokenizer, 3))], tokenizer.pad_token_id)
    batch.pop("real_tokens")
    monkeypatch.setattr(linear_ce, "CHUNK_ELEMENTS", 7 * model.config.vocab_size)  # several chunks, the last one short
    fused_loss, fused_grads = per_example_losses_and_grads(model, [batch])
    monkeypatch.setattr(loss, "fusable_head", lambda model: None)
    plain_loss, plain_grads = per_example_losses_and_grads(model, [batch])
    assert int((batch["labels"] != -100).sum()) > 7
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_grads[0], plain_grads[0], rtol=1e-5, atol=1e-5)


def test_fused_head_without_gradients_gives_the_plain_loss(tiny_model_dir):
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    batch = collate_packed([PackedRow.from_examples(examples(tokenizer, 2))], tokenizer.pad_token_id)
    batch.pop("real_tokens")
    with torch.no_grad():
        loss, count = summed_label_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0, :-1]
    plain = F.cross_entropy(logits, batch["labels"][0, 1:], ignore_index=-100, reduction="sum")
    assert count == int((batch["labels"][0, 1:] != -100).sum())
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-5)


def test_fused_head_loss_of_a_batch_without_labels_is_zero():
    from tuneloop.losses.linear_ce import LinearCrossEntropy

    hidden = torch.zeros(0, 8, requires_grad=True)
    loss = LinearCrossEntropy.apply(hidden, torch.randn(50, 8), None, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert float(loss) == 0.0 and hidden.grad.shape == (0, 8)
