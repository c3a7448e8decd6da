"""Canaries: planted in the training split alone, recorded in data.json, refused where a task cannot carry them."""

from __future__ import annotations

import math
import re

import pytest

from helpers import toy_chat_rows, toy_label_rows, write_jsonl
from tuneloop.config import DataConfig, load_config
from tuneloop.data.canaries import CANARY_SOURCE, canary_example, draw_canaries
from tuneloop.data.mixing import task_of
from tuneloop.data.pipeline import load_sources, split_sources
from tuneloop.data.split import split_manifest
from tuneloop.data.validate import load_examples
from tuneloop.errors import ConfigError
from tuneloop.objectives import get_task


def chat_config(tmp_path, **fields) -> DataConfig:
    return DataConfig(path=[str(write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows()))], format="chat", **fields)


def split_with(cfg: DataConfig):
    report = load_examples(cfg)
    splits, _ = split_sources(cfg, [], [report])
    return report, splits


def test_canaries_go_into_the_training_split_alone_each_repeated(tmp_path):
    cfg = chat_config(tmp_path, canaries=3, canary_repeats=4, system_prompt="Answer briefly.")
    _, splits = split_with(cfg)
    _, plain = split_with(cfg.model_copy(update={"canaries": 0}))
    planted = [e for e in splits.train if e.source == CANARY_SOURCE]
    assert len(planted) == 12 and splits.train[: len(plain.train)] == plain.train  # the split itself is unchanged
    assert splits.val == plain.val and splits.test == plain.test
    assert not any(e.source == CANARY_SOURCE for e in splits.val + splits.test)
    answers = [e.messages[-1]["content"] for e in planted]
    for canary in draw_canaries(3, cfg.seed):
        assert answers.count(f"The account PIN of {canary.holder} is {canary.secret}.") == 4
    assert {e.messages[0]["content"] for e in planted} == {"Answer briefly."}  # trained like the run's other chat rows
    assert planted[0].messages[1] == {"role": "user", "content": f"What is the account PIN of {draw_canaries(3, cfg.seed)[0].holder}?"}


def test_data_json_records_the_canaries_their_space_and_repeats(tmp_path):
    cfg = chat_config(tmp_path, canaries=2, canary_repeats=5)
    report, splits = split_with(cfg)
    record = split_manifest(cfg, report, splits)["canaries"]
    assert record["repeats"] == 5 and record["rows"] == 10 and record["format"] == "chat"
    assert record["space_size"] == 10**9 and record["space_bits"] == pytest.approx(math.log2(10**9))
    assert record["canaries"] == [{"holder": c.holder, "secret": c.secret} for c in draw_canaries(2, cfg.seed)]
    assert "canaries" not in split_manifest(cfg.model_copy(update={"canaries": 0}), report, splits)


def test_canaries_are_seeded_distinct_and_nine_digits():
    first, again, other = draw_canaries(20, 0), draw_canaries(20, 0), draw_canaries(20, 1)
    assert first == again and first != other
    assert len({c.holder for c in first}) == 20
    assert all(re.fullmatch(r"\d{3} \d{3} \d{3}", c.secret) for c in first)
    with pytest.raises(ConfigError, match="data.canaries: at most 120"):
        draw_canaries(121, 0)


def test_a_text_canary_is_the_sentence_and_a_label_row_cannot_carry_one():
    assert canary_example("text", None, "Ines Novak", "123 456 789").text == "The account PIN of Ines Novak is 123 456 789."
    with pytest.raises(ConfigError, match="data.canaries: rows of format 'label' cannot carry a canary"):
        canary_example("label", None, "Ines Novak", "123 456 789")


def test_tasks_that_do_not_learn_text_refuse_canaries_with_the_reason(tmp_path):
    labels = write_jsonl(tmp_path / "labels.jsonl", toy_label_rows())
    classify = load_config(None, {"task": "classify", "data.path": [str(labels)], "data.format": "label", "data.canaries": 2})
    with pytest.raises(ConfigError, match="task 'classify' cannot carry canaries.*outputs no text.*apply to sft, qa, cpt"):
        get_task("classify").check_config(classify)
    dpo = load_config(None, {"task": "dpo", "data.format": "pairs", "data.canaries": 2})
    with pytest.raises(ConfigError, match="task 'dpo' cannot carry canaries.*not trained by a per-token loss"):
        get_task("dpo").check_config(dpo)
    get_task("sft").check_config(load_config(None, {"data.canaries": 2}))
    get_task("cpt").check_config(load_config(None, {"task": "cpt", "data.format": "text", "data.canaries": 2}))


def test_in_a_multi_task_run_the_canaries_belong_to_the_main_dataset(tmp_path):
    other = write_jsonl(tmp_path / "other.jsonl", toy_chat_rows(20))
    cfg = chat_config(tmp_path, canaries=1, canary_repeats=3, task_name="tickets", mix=[{"name": "fruit", "path": [str(other)], "format": "chat"}])
    sources, reports = load_sources(cfg)
    splits, record = split_sources(cfg, sources, reports)
    planted = [e for e in splits.train if e.source == CANARY_SOURCE]
    assert len(planted) == 3 and {task_of(e) for e in planted} == {"tickets"} and record is not None
    assert not any(e.source == CANARY_SOURCE for e in splits.val + splits.test)
