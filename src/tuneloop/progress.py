"""Terminal feedback shared by long-running steps (rich, to stderr)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Callable, Iterator


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


def quiet_libraries() -> None:
    """Our own progress output replaces the libraries' bars and deprecation chatter."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)


@contextlib.contextmanager
def generation_progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal; one line per batch otherwise (logs, CI)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not sys.stderr.isatty():
        done = [0]

        def advance_plain(count: int) -> None:
            done[0] += count
            print(f"{label}: {done[0]}/{total}", file=sys.stderr, flush=True)

        yield advance_plain
        return
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console()) as progress:
        task = progress.add_task("generate", total=total)
        yield lambda count: progress.update(task, advance=count)
