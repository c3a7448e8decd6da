"""The continuous-batching engine: requests that join a running batch, leave it early, or sample,
get exactly what they would get alone, and a failing pass never stops the worker."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tuneloop.serve.engine import Engine, Generation, text_before_stop

PROMPTS = ["Hello there, how are", "The invoice for March", "Reset my password please", "Why is the API slow today"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return Engine(model, tokenizer, max_batch=4, max_wait_s=0.0)


def alone(engine, prompt: str, max_tokens: int) -> list[int]:
    """Greedy ids from plain transformers ``generate`` at batch 1: the reference."""
    ids = engine.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = engine.model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=engine.tokenizer.pad_token_id)
    new = out[0, ids.shape[1] :].tolist()
    stop = next((i for i, token in enumerate(new) if token in engine.stop_ids), len(new))
    return new[:stop]


def test_requests_joining_and_leaving_a_running_batch_get_their_answer_alone(engine):
    first = engine.submit(Generation(PROMPTS[0], max_tokens=24))
    while len(first.token_ids) < 4:  # the first request is mid-flight when the others join
        time.sleep(0.001)
    others = [engine.submit(Generation(prompt, max_tokens=tokens)) for prompt, tokens in zip(PROMPTS[1:], (3, 16, 9))]
    for generation in [first, *others]:
        assert generation.finished.wait(60) and generation.error is None
    assert first.token_ids == alone(engine, PROMPTS[0], 24)
    for generation, prompt, tokens in zip(others, PROMPTS[1:], (3, 16, 9)):
        assert generation.token_ids == alone(engine, prompt, tokens)
        assert generation.finish_reason == "length" or len(generation.token_ids) < tokens
    assert engine.stats.row_steps > engine.stats.steps  # steps advanced several requests at once


def test_nucleus_smaller_than_the_top_token_is_greedy(engine):
    sampled = engine.generate(Generation(PROMPTS[2], max_tokens=8, temperature=0.7, top_p=1e-6), timeout=60)
    assert sampled.token_ids == alone(engine, PROMPTS[2], 8)
    hot = engine.generate(Generation(PROMPTS[2], max_tokens=8, temperature=5.0), timeout=60)
    assert len(hot.token_ids) <= 8 and all(0 <= t < engine.model.config.vocab_size for t in hot.token_ids)


def test_a_failing_pass_fails_its_requests_and_the_engine_keeps_serving(engine, monkeypatch):
    real_forward = engine.model.forward
    broken = threading.Event()

    def failing_once(*args, **kwargs):
        if not broken.is_set():
            broken.set()
            raise RuntimeError("simulated kernel failure")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", failing_once)
    failed = engine.submit(Generation(PROMPTS[3], max_tokens=4))
    assert failed.finished.wait(60) and isinstance(failed.error, RuntimeError)
    monkeypatch.undo()
    assert engine.generate(Generation(PROMPTS[3], max_tokens=4), timeout=60).token_ids == alone(engine, PROMPTS[3], 4)


def test_a_row_whose_sampling_fails_fails_alone_and_its_batch_mates_finish(engine):
    poisoned = Generation(PROMPTS[0], max_tokens=6, temperature=float("nan"))  # softmax of NaN: multinomial raises
    mates = [Generation(prompt, max_tokens=6) for prompt in PROMPTS[1:]]
    for generation in [poisoned, *mates]:
        engine.submit(generation)
    for generation in [poisoned, *mates]:
        assert generation.finished.wait(60)
    assert isinstance(poisoned.error, RuntimeError)
    for generation, prompt in zip(mates, PROMPTS[1:]):
        assert generation.error is None and generation.token_ids == alone(engine, prompt, 6)


def test_a_temperature_too_small_to_divide_by_is_greedy(engine):
    tiny = engine.generate(Generation(PROMPTS[1], max_tokens=6, temperature=1e-300), timeout=60)
    assert tiny.token_ids == alone(engine, PROMPTS[1], 6)


@pytest.mark.parametrize(
    "text, stops, final, expected",
    [("hello world", ("wor",), False, ("hello ", True)), ("hello wo", ("wor",), False, ("hello ", False)),
     ("hello wo", ("wor",), True, ("hello wo", False)), ("a.b", (".", "b"), False, ("a", True)), ("abc", (), False, ("abc", False))],
)  # fmt: skip
def test_text_before_stop_holds_back_what_may_start_a_stop_string(text, stops, final, expected):
    assert text_before_stop(text, stops, final) == expected


def test_stop_strings_end_the_answer_and_stream_only_text_before_them(engine):
    full = engine.generate(Generation(PROMPTS[2], max_tokens=12), timeout=60).text
    stop = full[4:6]
    pieces: list[str] = []
    cut = engine.generate(Generation(PROMPTS[2], max_tokens=12, stop=(stop,), on_text=pieces.append), timeout=60)
    assert (cut.text, cut.finish_reason, "".join(pieces)) == (full[: full.index(stop)], "stop", full[: full.index(stop)])


def test_a_prompt_that_breaks_its_prefill_fails_alone_and_the_running_batch_goes_on(engine, monkeypatch):
    poison = len(engine.tokenizer) - 1  # a token no prompt here encodes to; a prefill holding it raises
    assert all(poison not in engine.encoder.encode(prompt) for prompt in PROMPTS)
    real_forward = engine.model.forward

    def failing_on_the_poison(*args, **kwargs):
        if (kwargs["input_ids"] == poison).any():
            raise RuntimeError("simulated failure of one prompt's prefill")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", failing_on_the_poison)
    running = engine.submit(Generation(PROMPTS[0], max_tokens=24))
    while len(running.token_ids) < 2:  # mid-flight when the poisoned prompt and its fellow arrivals join
        time.sleep(0.001)
    poisoned = Generation("", prompt_ids=engine.encoder.encode(PROMPTS[1]) + [poison], max_tokens=6)
    mates = [Generation(prompt, max_tokens=6) for prompt in PROMPTS[2:]]
    for generation in [poisoned, *mates]:
        engine.submit(generation)
    for generation in [running, poisoned, *mates]:
        assert generation.finished.wait(60)
    assert isinstance(poisoned.error, RuntimeError)
    assert running.error is None and running.token_ids == alone(engine, PROMPTS[0], 24)
    for generation, prompt in zip(mates, PROMPTS[2:]):
        assert generation.error is None and generation.token_ids == alone(engine, prompt, 6)


def test_after_a_stop_string_the_tokens_counted_are_those_of_the_text_returned(engine):
    full = engine.generate(Generation(PROMPTS[2], max_tokens=12), timeout=60)
    ids = full.token_ids
    stop = engine.encoder.decode(ids[-3:-1])  # two whole tokens: the answer stops before them
    assert stop.strip() and stop in full.text, (full.text, stop)
    cut = engine.generate(Generation(PROMPTS[2], max_tokens=12, stop=(stop,)), timeout=60)
    spelled = next(k for k in range(len(ids) + 1) if engine.encoder.decode(ids[:k]).startswith(cut.text))
    assert cut.text == full.text[: full.text.index(stop)] and cut.finish_reason == "stop"
    assert cut.token_ids == ids[:spelled] and len(cut.token_ids) < len(ids) - 1
