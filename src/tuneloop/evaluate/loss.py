"""Token-weighted loss of a model on chat examples (assistant tokens only)."""

from __future__ import annotations

import math


def heldout_loss(model, tokenizer, tokenized, pack: bool = True, pack_length: int = 1024, rows_per_batch: int = 4) -> dict:
    """Mean cross-entropy per target token and its perplexity (packed rows unless ``pack`` is off)."""
    import torch

    from tuneloop.train.loss import summed_label_loss
    from tuneloop.train.sft_data import batch_rows, collate_rows

    longest = max((len(t) for t in tokenized), default=1)
    rows = batch_rows(tokenized, pack, max(pack_length, longest), seed=0)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), rows_per_batch):
            batch = collate_rows(rows[start : start + rows_per_batch], tokenizer.pad_token_id)
            batch.pop("real_tokens")
            loss_sum, n = summed_label_loss(model, batch)
            total += float(loss_sum)
            count += n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
