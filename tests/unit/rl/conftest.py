"""Fixtures for the rl tasks' tests on tiny models."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread_each(one_torch_thread):
    yield
