"""Replay rows: how many, from where, cached, and refused where they cannot apply."""

from __future__ import annotations

import json

import pytest

from tuneloop.config import load_config
from tuneloop.errors import ConfigError
from tuneloop.evaluate import general_replay
from tuneloop.evaluate.general_suite import eval_prompts, replay_prompts
from tuneloop.objectives import get_task


@pytest.fixture
def fake_answers(monkeypatch, tmp_path):
    """The base model's answers without a model: counts the prompts each call generates."""
    calls = []

    def generate(model_name, prompts, max_new_tokens):
        calls.append(list(prompts))
        return [f"answer to {p}" for p in prompts]

    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(general_replay, "generate_answers", generate)
    monkeypatch.setattr(general_replay, "model_identity", lambda name: [name])
    return calls


def data_config(fraction: float, model: str = "base-model"):
    return load_config(None, {"model.name": model, "data.replay_fraction": fraction}).data


def test_replay_model_defaults_to_the_base_model_and_is_recorded():
    assert data_config(0.1, "my-model").replay_model == "my-model"
    assert load_config(None, {"model.name": "my-model"}).data.replay_model is None  # replay off: nothing to name


def test_rows_come_from_the_replay_pool_only_and_are_cached(fake_answers):
    rows, record = general_replay.replay_examples(data_config(0.1), get_task("sft"), train_rows=200)
    assert len(rows) == record["rows"] == 20
    prompts = [r.messages[0]["content"] for r in rows]
    assert set(prompts) <= set(replay_prompts()) and not set(prompts) & set(eval_prompts())
    assert all(r.source == general_replay.REPLAY_SOURCE and r.messages[1]["role"] == "assistant" for r in rows)
    assert record["model"] == "base-model" and len(record["pool_sha256"]) == 64
    again, _ = general_replay.replay_examples(data_config(0.1), get_task("sft"), train_rows=200)
    assert again == rows and len(fake_answers) == 1  # the second time everything came from the cache
    cache = general_replay.replay_cache_path("base-model", 96)
    assert len(json.loads(cache.read_text())["answers"]) == 20


def test_more_rows_than_the_pool_holds_is_refused_before_any_generation(fake_answers):
    with pytest.raises(ConfigError, match=r"data.replay_fraction 0.5 asks for 500 replay rows .* pool holds 284 prompts"):
        general_replay.replay_examples(data_config(0.5), get_task("sft"), train_rows=1000)
    assert fake_answers == []


def test_replay_is_refused_for_tasks_without_chat_rows(fake_answers):
    with pytest.raises(ConfigError, match="task 'classify' cannot train on"):
        general_replay.replay_examples(data_config(0.1), get_task("classify"), train_rows=100)


def test_off_means_no_rows_and_no_record(fake_answers):
    assert general_replay.replay_examples(data_config(0.0), get_task("sft"), train_rows=100) == ([], None)
    assert fake_answers == []


def test_answers_cut_off_mid_sentence_end_at_the_last_full_sentence():
    assert general_replay.end_at_sentence("One. Two is cut") == "One."
    assert general_replay.end_at_sentence("Complete sentence.") == "Complete sentence."
    assert general_replay.end_at_sentence("no sentence end at all") == "no sentence end at all"
