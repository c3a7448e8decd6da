"""Token-weighted held-out loss of a model, batched the way its task trains."""

from __future__ import annotations

import math


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
