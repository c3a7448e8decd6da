"""What every command shares: a user's mistake becomes one clear line and exit status 2."""

from __future__ import annotations

import functools

import typer

from tuneloop.errors import TuneloopError


def user_errors(func):
    """Turn TuneloopError into a one-line message and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TuneloopError as err:
            typer.secho(f"error: {err}", fg="red", err=True)
            raise typer.Exit(2) from None

    return wrapper
