"""Replay rows: how many, from where, cached, and refused where they cannot apply."""

from __future__ import annotations

import json

import pytest

from tuneloop.config import load_config
from tuneloop.errors import ConfigError
from tuneloop.train import replay as general_replay
from tuneloop.data.general_prompts import eval_prompts, replay_prompts
from tuneloop.objectives import get_task


@pytest.fixture
def fake_answers(monkeypatch, tmp_path):
    """The base model's answers without a model: counts the prompts each call generates."""
    calls = []

    def generate(model_name, prompts, settings):
        calls.append((list(prompts), settings))
        return [f"answer to {p} at {settings.temperature:g}" for p in prompts]

    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(general_replay, "generate_answers", generate)
    monkeypatch.setattr(general_replay, "model_identity", lambda name: [name])
    return calls


def data_config(fraction: float, model: str = "base-model", **overrides):
    return load_config(None, {"model.name": model, "data.replay_fraction": fraction, **overrides}).data


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
    cache = general_replay.replay_cache_path("base-model", general_replay.GenerationSettings(96, 1.0, 0))
    assert len(json.loads(cache.read_text())["answers"]) == len(replay_prompts())  # the whole pool, once


def test_answers_are_sampled_at_the_configured_temperature_and_seed_by_default(fake_answers):
    rows, record = general_replay.replay_examples(data_config(0.1, **{"data.seed": 7}), get_task("sft"), train_rows=200)
    (_, settings), = fake_answers
    assert settings == general_replay.GenerationSettings(96, 1.0, 7) and record["temperature"] == 1.0
    assert all(r.messages[1]["content"].endswith(" at 1") for r in rows)


def test_greedy_answers_have_their_own_cache_which_ignores_the_seed(fake_answers):
    greedy = {"data.replay_temperature": 0.0}
    general_replay.replay_examples(data_config(0.1, **greedy), get_task("sft"), train_rows=200)
    general_replay.replay_examples(data_config(0.1, **greedy, **{"data.seed": 3}), get_task("sft"), train_rows=200)
    assert [settings for _, settings in fake_answers] == [general_replay.GenerationSettings(96, 0.0, 0)]
    general_replay.replay_examples(data_config(0.1), get_task("sft"), train_rows=200)  # sampled: not the greedy cache
    assert len(fake_answers) == 2


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


def test_a_greedy_share_of_the_rows_takes_the_greedy_answers_and_the_rest_are_sampled(fake_answers):
    config = data_config(0.1, **{"data.replay_greedy_share": 0.25})
    rows, record = general_replay.replay_examples(config, get_task("sft"), train_rows=200)
    kinds = [r.messages[1]["content"].rsplit(" at ", 1)[1] for r in rows]
    assert kinds == ["0"] * 5 + ["1"] * 15 and record["greedy_rows"] == 5
    assert sorted(settings.temperature for _, settings in fake_answers) == [0.0, 1.0]  # each kind answered the pool once
    again, _ = general_replay.replay_examples(data_config(0.1), get_task("sft"), train_rows=200)
    assert [r.messages[0] for r in again] == [r.messages[0] for r in rows]  # the same prompts, whatever the share
