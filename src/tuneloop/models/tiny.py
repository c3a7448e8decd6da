"""Tiny random Llama models with a real byte-level BPE tokenizer, built locally in seconds.

Tests and smoke runs use these instead of the built-in models: same code paths (safetensors
folder, chat template, PEFT), a thousandth of the compute.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
DEFAULT_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Billing, refunds, invoices and accounts. "
    "Subject: login fails after password reset. Please help, the dashboard is down for all users. "
    '{"category": "billing", "priority": "high", "product": "CloudSync", "needs_human": true} '
    "user assistant system 0123456789 , . ! ? : ; ' \" { } [ ] ( )"
)


def build_tiny_tokenizer(corpus: str = DEFAULT_CORPUS, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator([corpus] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    fast.chat_template = CHATML
    return fast


def build_tiny_llama(folder: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0, corpus: str = DEFAULT_CORPUS) -> Path:
    """Write a random 2-layer Llama (width ``hidden``) and its tokenizer to ``folder``.

    >>> path = build_tiny_llama("/tmp/tiny")  # doctest: +SKIP
    >>> model, tokenizer = load_causal_lm(str(path))  # doctest: +SKIP
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(corpus)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_bert(folder: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0, corpus: str = DEFAULT_CORPUS) -> Path:
    """Write a random 2-layer BERT encoder (the minilm-l6 architecture, scaled down) and a tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(corpus)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
