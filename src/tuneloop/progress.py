"""Terminal feedback shared by long-running steps (rich, to stderr)."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


def console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with a message while a slow step runs (plain line when not a terminal)."""
    if not sys.stderr.isatty():
        print(message + " ...", file=sys.stderr, flush=True)
        yield
        return
    with console().status(message):
        yield
