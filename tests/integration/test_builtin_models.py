"""The real offline built-ins (slow: converts SmolLM2's GGUF once into a fresh cache)."""

from __future__ import annotations

import time

import pytest
import torch


@pytest.mark.slow
def test_smollm2_converts_once_then_loads_in_seconds_and_answers(tmp_path, monkeypatch):
    from tuneloop.text.generate import generate_texts
    from tuneloop.models.load import load_causal_lm
    from tuneloop.text.tokenize import render_prompt

    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path))
    load_causal_lm("smollm2-135m-instruct")
    cached = list((tmp_path / "models").iterdir())
    assert len(cached) == 1 and (cached[0] / "model.safetensors").exists()
    started = time.perf_counter()
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    assert time.perf_counter() - started < 15
    prompt = render_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in generate_texts(model, tokenizer, [prompt], max_new_tokens=12)[0]


@pytest.mark.slow
def test_minilm_encoder_loads_from_its_wheel():
    from transformers import AutoModel, AutoTokenizer

    from tuneloop.models.load import resolve_model

    source = resolve_model("minilm-l6")
    model = AutoModel.from_pretrained(source.location, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    with torch.no_grad():
        hidden = model(**tokenizer(["refund my invoice"], return_tensors="pt")).last_hidden_state
    assert hidden.shape[-1] == 384
