"""Shared fixtures: tiny local models and small data files, built in the test session.

Every test also gets the marker of its tier, named after its top folder under tests/:
``unit``, ``integration``, ``e2e`` or ``reliability`` (so ``pytest -m unit`` is the fast edit-loop run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from helpers import toy_chat_rows, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "e2e", "reliability")


@pytest.hookimpl(tryfirst=True)  # before -m selects by these markers
def pytest_collection_modifyitems(config, items):
    """Mark each test with its tier, from its folder: tests/<tier>/... ."""
    for item in items:
        try:
            tier = item.path.relative_to(TESTS).parts[0]
        except ValueError:  # a test file outside tests/ (named on the command line)
            continue
        if tier in TIERS:
            item.add_marker(tier)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Iterator[Path]:
    """``$TUNELOOP_CACHE`` of every test and of the commands they run: a folder of the session, so the
    user's cache is never touched, and a data file whose personal data one test (or doc page) scrubbed
    is not analysed again by the next (:mod:`tuneloop.data.pii_cache`)."""
    folder = tmp_path_factory.mktemp("tuneloop-cache")
    before = os.environ.get("TUNELOOP_CACHE")
    os.environ["TUNELOOP_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("TUNELOOP_CACHE", None)
    else:
        os.environ["TUNELOOP_CACHE"] = before


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


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine two threads contend badly."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
