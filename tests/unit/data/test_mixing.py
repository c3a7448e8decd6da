"""Multi-task mixing: shares of the draws, the mixed training split, per-task splits and bad weights."""

from __future__ import annotations

import pytest

from helpers import toy_chat_rows, write_jsonl
from tuneloop.data.mixing import draw_counts, draw_rows, mixing_probabilities, task_of
from tuneloop.data.schema import Example


def test_proportional_follows_rows_times_weight():
    assert mixing_probabilities([300, 100], [1.0, 1.0], "proportional", 2.0) == pytest.approx([0.75, 0.25])
    assert mixing_probabilities([300, 100], [1.0, 3.0], "proportional", 2.0) == pytest.approx([0.5, 0.5])


def test_temperature_lifts_the_small_task():
    proportional = mixing_probabilities([900, 100], [1, 1], "proportional", 1.0)
    tempered = mixing_probabilities([900, 100], [1, 1], "temperature", 2.0)
    assert tempered[1] > proportional[1]
    assert tempered == pytest.approx([30 / 40, 10 / 40])  # sqrt(900) : sqrt(100)
    assert mixing_probabilities([900, 100], [1, 1], "temperature", 1.0) == pytest.approx(proportional)


def test_a_task_without_training_rows_gets_no_draws():
    assert mixing_probabilities([0, 10], [5.0, 1.0], "temperature", 3.0) == [0.0, 1.0]


def test_draw_counts_add_up_exactly():
    counts = draw_counts(10, [1 / 3, 1 / 3, 1 / 3])
    assert sum(counts) == 10 and max(counts) - min(counts) == 1


def test_oversampled_rows_repeat_in_whole_passes():
    rows = [Example("f", i, text=str(i)) for i in range(4)]
    drawn = draw_rows(rows, 10, seed=0)
    assert len(drawn) == 10
    assert sorted(e.line for e in drawn[:4]) == [0, 1, 2, 3] and sorted(e.line for e in drawn[4:8]) == [0, 1, 2, 3]


def mixed_config(tmp_path, **data):
    from tuneloop.config import load_config

    main = write_jsonl(tmp_path / "main.jsonl", toy_chat_rows(40))
    other_rows = [{"prompt": f"Say the number {i} in words, please ({i % 3})", "completion": str(i)} for i in range(20)]
    other = write_jsonl(tmp_path / "numbers.jsonl", other_rows)
    mix = [{"name": "numbers", "path": [str(other)], "format": "prompt_completion", "weight": 2.0, **data.pop("entry", {})}]
    return load_config(None, {"data.path": [str(main)], "data.task_name": "fruit", "data.mix": mix, **{f"data.{k}": v for k, v in data.items()}})


def test_each_dataset_is_split_on_its_own_and_the_training_rows_are_mixed(tmp_path, tiny_model_dir):
    from tuneloop.train.prepare import prepare_dataset
    from tuneloop.objectives import get_task
    from tuneloop.models.load import load_tokenizer
    from tuneloop.text.tokenize import ensure_chat_template

    config = mixed_config(tmp_path)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    ensure_chat_template(tokenizer)
    data = prepare_dataset(config.data, tokenizer, get_task("sft"))
    record = data.manifest["mix"]["tasks"]
    assert record["fruit"]["train_rows"] == 28 and record["numbers"]["train_rows"] == 14
    assert record["fruit"]["probability"] == pytest.approx(28 / 56) and record["numbers"]["drawn"] == 21
    assert len(data.splits.train) == 42 and {task_of(e) for e in data.splits.train} == {"fruit", "numbers"}
    assert sum(task_of(e) == "numbers" for e in data.splits.test) == record["numbers"]["test_rows"] == 4
    assert len(data.manifest["sources"]) == 2  # both files hashed in data.json


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"entry": {"weight": 0}}, "data.mix.0.weight"),
        ({"task_weight": -1.0}, "data.task_weight"),
        ({"task_name": "numbers"}, "repeated: numbers"),
        ({"entry": {"path": []}}, "data.mix.0.path"),
    ],
    ids=["zero-weight", "negative-main-weight", "same-name", "no-files"],
)
def test_bad_mixtures_are_refused_before_any_work(tmp_path, data, message):
    from tuneloop.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        mixed_config(tmp_path, **data)
