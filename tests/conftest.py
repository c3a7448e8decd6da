"""Shared fixtures: tiny local models and small data files, built in the test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import toy_chat_rows, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tuneloop.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    from tuneloop.models.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    from tuneloop.models.tiny_seq2seq import build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture
def toy_chat_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "toy.jsonl", toy_chat_rows())
