"""Shared fixtures: tiny local models and small data files, built in the test session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tuneloop.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_chat_rows(n: int = 40) -> list[dict]:
    """A learnable toy task: answer the colour of a named fruit."""
    fruits = {"apple": "red", "banana": "yellow", "lime": "green", "plum": "purple", "orange": "orange"}
    rows = []
    for i in range(n):
        fruit = list(fruits)[i % len(fruits)]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Ticket {i}: what colour is the {fruit}?"},
                    {"role": "assistant", "content": fruits[fruit]},
                ]
            }
        )
    return rows


@pytest.fixture
def toy_chat_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows())
