"""Token-weighted held-out loss of a model, batched the way its task trains."""

from __future__ import annotations

import math

from tuneloop.text.tokenize import collate_padded


def heldout_loss(model, tokenizer, tokenized, task, pack: bool = True, pack_length: int = 1024, rows_per_batch: int = 4) -> dict:
    """Mean cross-entropy per label and its perplexity (packed rows where the task and method allow)."""
    import torch

    longest = max((len(t) for t in tokenized), default=1)
    rows = task.batch_rows(tokenized, pack, max(pack_length, longest), seed=0)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), rows_per_batch):
            batch = task.collate(rows[start : start + rows_per_batch], tokenizer.pad_token_id)
            batch.pop("real_tokens")
            loss_sum, n = task.summed_loss(model, batch)
            total += float(loss_sum)
            count += n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def row_losses(model, tokenizer, tokenized, rows_per_batch: int = 16) -> list[tuple[float, int]]:
    """(summed cross-entropy in nats, labelled tokens) of each tokenised example, in order.

    Rows are padded, never packed, so each example's loss is its own; batches hold examples of
    similar length (longest first) to waste little on padding.
    """
    import torch

    from tuneloop.losses.label_loss import per_row_label_loss

    order = sorted(range(len(tokenized)), key=lambda i: len(tokenized[i]), reverse=True)
    found: dict[int, tuple[float, int]] = {}
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), rows_per_batch):
            chosen = order[start : start + rows_per_batch]
            batch = collate_padded([tokenized[i] for i in chosen], tokenizer.pad_token_id)
            sums, counts = per_row_label_loss(model, batch["input_ids"].to(device), batch["attention_mask"].to(device), batch["labels"].to(device))
            found.update({i: (float(s), int(c)) for i, s, c in zip(chosen, sums.tolist(), counts.tolist())})
    return [found[i] for i in range(len(tokenized))]
