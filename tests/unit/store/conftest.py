"""Store fixtures: a store file per test and run folders made of the few files a finished run writes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest


@pytest.fixture
def store_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home" / "store.sqlite3"
    monkeypatch.setenv("TUNELOOP_STORE", str(path))
    return path


@pytest.fixture
def conn(store_file):
    from tuneloop.store.db import connect

    with contextlib.closing(connect(store_file)) as connection:
        yield connection


@pytest.fixture
def make_run(tmp_path):
    """Write a minimal finished run folder: config.yaml, data.json, metrics.json and adapter/."""

    def make(name: str, project: str = "support-triage", dataset_hash: str = "d" * 64, accuracy: float | None = 0.9, **overrides) -> Path:
        from tuneloop.config import dump_config, load_config

        run = tmp_path / "runs" / name
        (run / "adapter").mkdir(parents=True)
        config = load_config(None, {"project": project, "out": str(run), **overrides})
        (run / "config.yaml").write_text(dump_config(config))
        (run / "data.json").write_text(json.dumps({"sources": [], "dataset_hash": dataset_hash}))
        if accuracy is not None:
            metrics = {"primary": "accuracy", "base": {"accuracy": 0.2}, "tuned": {"accuracy": accuracy}, "test_examples": 10}
            (run / "metrics.json").write_text(json.dumps(metrics))
        return run

    return make
