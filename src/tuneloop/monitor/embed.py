"""Sentence embeddings from the built-in MiniLM encoder (mean pooling, unit length, as it was trained)."""

from __future__ import annotations

from tuneloop.config import ModelConfig
from tuneloop.models.load import load_pretrained, load_tokenizer


def embed_texts(texts: list[str], model_name: str = "minilm-l6", batch_size: int = 64, max_length: int = 256):
    """[len(texts), 384] float tensor; one row per text."""
    import torch
    from transformers import AutoModel

    tokenizer = load_tokenizer(model_name)
    model = load_pretrained(AutoModel, ModelConfig(name=model_name)).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: little padding
    embedded = torch.zeros((len(texts), model.config.hidden_size))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            embedded[chunk] = torch.nn.functional.normalize(pooled, dim=-1)
    return embedded
