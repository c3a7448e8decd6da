"""Batched generation (greedy, or seeded sampling) for evaluation, replay and the CLI."""

from __future__ import annotations

from typing import Callable, Iterable

from tuneloop.models.load import load_causal_lm
from tuneloop.progress import generation_progress, status
from tuneloop.text.tokenize import ensure_chat_template, render_prompt


def generate_texts(
    model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 16, progress=None,
    temperature: float = 0.0, seed: int = 0,
) -> list[str]:
    """Completions of rendered ``prompts``, in input order: greedy, or sampled at ``temperature`` > 0
    (plain ancestral sampling, no top-k/top-p, seeded by ``seed``).

    Prompts are batched by length (left-padded) so little compute goes to padding.
    """
    import torch

    if temperature <= 0:
        return _generate_batches(model, tokenizer, prompts, max_new_tokens, batch_size, progress, {"do_sample": False})
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda_devices):  # seeded sampling leaves the caller's random state alone
        # Not torch.manual_seed: on a machine with CUDA not yet in use it also queues a seed for CUDA, which
        # the fork cannot restore. A model on CUDA has initialised it, so its devices are in the fork.
        torch.default_generator.manual_seed(seed)
        if model.device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
        return _generate_batches(model, tokenizer, prompts, max_new_tokens, batch_size, progress, sampling)


def _generate_batches(model, tokenizer, prompts, max_new_tokens, batch_size, progress, sampling) -> list[str]:
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
                **sampling,
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


def chat_generator(model_name: str, batch_size: int = 16) -> Callable[[list[list[dict]], int, str], list[str]]:
    """``generate(chats, max_new_tokens, label) -> replies``: greedy batched replies of the named causal LM
    to chat conversations, under a progress bar. The model loads at the first call, once."""
    loaded = []

    def generate(chats: list[list[dict]], max_new_tokens: int, label: str) -> list[str]:
        if not loaded:
            with status(f"Loading {model_name}"):
                loaded.extend(load_causal_lm(model_name))
            ensure_chat_template(loaded[1])
        model, tokenizer = loaded
        prompts = [render_prompt(tokenizer, chat) for chat in chats]
        with generation_progress(len(prompts), f"{model_name}: {label}") as advance:
            return generate_texts(model, tokenizer, prompts, max_new_tokens, batch_size, progress=advance)

    return generate
