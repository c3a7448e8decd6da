"""Where a study is stored, and optuna's experimental-feature warnings kept out of the output."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

from tuneloop.config import RunConfig


def storage_url(config: RunConfig, out: Path) -> str:
    return config.tune.storage or f"sqlite:///{(out / 'study.db').resolve()}"


@contextlib.contextmanager
def optuna_warnings_quiet() -> Iterator[None]:
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield
