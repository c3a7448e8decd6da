"""A tiny random T5 with the tiny byte-level BPE tokenizer, built locally in seconds.

Tests of the ``seq2seq`` task use it the way the tiny Llama serves causal tasks: the real
encoder-decoder code paths (safetensors folder, generation, PEFT with ``SEQ_2_SEQ_LM``) at a
thousandth of the compute.
"""

from __future__ import annotations

from pathlib import Path

from tuneloop.models.tiny import DEFAULT_CORPUS, build_tiny_tokenizer


def build_tiny_t5(folder: str | Path, d_model: int = 32, layers: int = 2, seed: int = 0, corpus: str = DEFAULT_CORPUS) -> Path:
    """Write a random T5 (``layers`` encoder and decoder blocks, width ``d_model``) and its tokenizer.

    As in T5, the decoder starts from the padding token and stops at the end-of-sequence one,
    so ``generate`` needs no extra arguments.

    >>> path = build_tiny_t5("/tmp/tiny-t5")  # doctest: +SKIP
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(corpus)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_model // 4,
        d_ff=d_model * 2,
        num_layers=layers,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
