"""tuneloop eval RUN --data FILE: how the file is read, and what is refused before any model loads."""

import pytest

from tuneloop.config import DataConfig
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError, DataError
from tuneloop.evaluate.on_file import check_labels_known, file_data_config, output_name

RUN_DATA = DataConfig(
    path=["train.csv"], test_path="golden.csv", format="prompt_completion", prompt_template="Subject: {subject}\n{body}",
    target_columns=["category"], system_prompt="Triage.", replay_fraction=0.2,
)  # fmt: skip


def test_a_file_is_read_with_the_runs_settings_by_default():
    data = file_data_config(RUN_DATA, ["new.csv"], {})
    assert (data.path, data.format, data.prompt_template, data.target_columns, data.system_prompt) == (
        ["new.csv"], "prompt_completion", RUN_DATA.prompt_template, ["category"], "Triage."
    )
    assert (data.test_path, data.replay_fraction) == (None, 0.0)


def test_another_format_starts_from_its_own_defaults_but_keeps_the_system_prompt():
    data = file_data_config(RUN_DATA, ["new.jsonl"], {"format": "alpaca", "columns": {"instruction": "q"}})
    assert (data.format, data.columns, data.prompt_template, data.target_columns) == ("alpaca", {"instruction": "q"}, None, None)
    assert data.system_prompt == "Triage."


def test_bad_reading_settings_are_refused_naming_the_setting():
    with pytest.raises(ConfigError, match=r"data\.format"):
        file_data_config(RUN_DATA, ["new.csv"], {"format": "tweets"})
    with pytest.raises(ConfigError, match="cannot set seed"):
        file_data_config(RUN_DATA, ["new.csv"], {"seed": 3})


def test_a_class_the_run_never_saw_is_refused_with_its_row():
    rows = [Example("new.csv", 2, text="a", label="bug"), Example("new.csv", 3, text="b", label="sales")]
    check_labels_known(rows[:1], ["billing", "bug"])
    check_labels_known(rows, None)  # not a classifier
    with pytest.raises(DataError, match=r"label 'sales' \(new.csv:3\) is not one the run was trained on \(billing, bug\)"):
        check_labels_known(rows, ["billing", "bug"])


def test_output_name_comes_from_the_file_and_is_safe_in_a_file_name():
    assert output_name(None, ["data/golden set (v2).csv"]) == "golden-set-v2"
    assert output_name("march", ["x.csv"]) == "march"
    with pytest.raises(ConfigError, match="--name"):
        output_name("///", ["x.csv"])
