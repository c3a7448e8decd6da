"""Retraining's new data must leave a test split for the gate; too little is refused with the numbers,
before anything is written."""

from __future__ import annotations

import pytest

from tuneloop.config import DataConfig
from tuneloop.data.schema import Example
from tuneloop.data.split import split_train_val_test
from tuneloop.errors import DataError
from tuneloop.loop.retrain import check_new_test_split


def rows(n: int) -> list[Example]:
    return [Example("new.csv", i + 1, text=f"ticket number {i}") for i in range(n)]


def test_new_data_too_small_for_a_test_split_is_refused_with_the_numbers():
    config = DataConfig(path=["new.csv"], val_fraction=0.1, test_fraction=0.2)
    with pytest.raises(DataError, match="too few rows for the requested splits: new.csv leaves 1 usable rows"):
        check_new_test_split(split_train_val_test(rows(1), 0.1, 0.2, seed=0), config, "new.csv")
    check_new_test_split(split_train_val_test(rows(20), 0.1, 0.2, seed=0), config, "new.csv")


def test_a_production_run_without_a_test_fraction_leaves_the_gate_nothing_to_compare():
    config = DataConfig(path=["new.csv"], val_fraction=0.1, test_fraction=0.0)
    with pytest.raises(DataError, match="data.test_fraction is 0"):
        check_new_test_split(split_train_val_test(rows(20), 0.1, 0.0, seed=0), config, "new.csv")
