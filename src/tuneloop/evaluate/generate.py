"""Batched greedy generation for evaluation and the CLI."""

from __future__ import annotations

from typing import Iterable


def generate_texts(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 16, progress=None) -> list[str]:
    """Greedy completions of rendered ``prompts``, in input order.

    Prompts are batched by length (left-padded) so little compute goes to padding.
    """
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    tokenizer.padding_side = "left"
    model.eval()
    for chunk in _chunks(order, batch_size):
        batch = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        with torch.no_grad():
            generated = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        for index, text in zip(chunk, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            outputs[index] = text.strip()
        if progress is not None:
            progress(len(chunk))
    return outputs


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
