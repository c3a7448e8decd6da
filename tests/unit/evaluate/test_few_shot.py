"""Few-shot baselines: which k are evaluated, and how the prompt is built from training rows."""

from __future__ import annotations

import pytest

from tuneloop.config import EvalConfig, load_config
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError
from tuneloop.evaluate.few_shot import company_rows, draw_shots, few_shot_messages, shots_for
from tuneloop.train.replay import REPLAY_SOURCE


def chat(i: int, system: bool = True) -> Example:
    turns = [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    if system:
        turns.insert(0, {"role": "system", "content": "be brief"})
    return Example("t.jsonl", i, tuple(turns))


def test_default_shots_are_0_1_3_5_as_far_as_the_training_split_allows():
    assert shots_for(EvalConfig(), "sft", 400) == [0, 1, 3, 5]
    assert shots_for(EvalConfig(), "qa", 2) == [0, 1]


def test_explicit_shots_above_the_training_split_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"eval.few_shot: k=50 needs 50 training examples, but the training split has 12"):
        shots_for(EvalConfig(few_shot=[0, 50, 3]), "sft", 12)
    assert shots_for(EvalConfig(few_shot=[3, 0, 3]), "sft", 12) == [0, 3]  # sorted, once each


def test_no_shots_for_tasks_without_chat_examples_or_when_off():
    assert shots_for(EvalConfig(), "classify", 400) == []
    assert shots_for(EvalConfig(), "cpt", 400) == []
    assert shots_for(EvalConfig(few_shot=[]), "sft", 400) == []


def test_negative_k_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.few_shot"):
        load_config(None, {"eval.few_shot": ["-1"]})


def test_prompt_is_system_then_shots_then_the_question():
    messages = few_shot_messages([chat(1), chat(2)], chat(9))
    assert [m["content"] for m in messages] == ["be brief", "q1", "a1", "q2", "a2", "q9"]
    assert messages[-1]["role"] == "user"
    assert [m["content"] for m in few_shot_messages([], chat(9, system=False))] == ["q9"]


def test_shots_are_seeded_nested_and_never_replayed_rows():
    train = [chat(i) for i in range(20)] + [Example(REPLAY_SOURCE, 1, chat(99).messages)]
    rows = company_rows(train)
    assert len(rows) == 20
    assert draw_shots(rows, 5, seed=0) == draw_shots(rows, 5, seed=0)
    assert draw_shots(rows, 5, seed=0) != draw_shots(rows, 5, seed=1)
    assert draw_shots(rows, 0, seed=0) == []
