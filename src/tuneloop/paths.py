"""Where tuneloop keeps what outlives one run: the model cache, replay answers, the store, and caches
that can be rebuilt at any time (what the PII scrub found in a data file)."""

from __future__ import annotations

import os
from pathlib import Path


def tuneloop_home() -> Path:
    """``$TUNELOOP_HOME``, else ``~/.cache/tuneloop``."""
    return Path(os.environ.get("TUNELOOP_HOME", Path.home() / ".cache" / "tuneloop")).expanduser()


def tuneloop_cache() -> Path:
    """``$TUNELOOP_CACHE``, else ``$TUNELOOP_HOME/cache``: what is here can be deleted at any time, and is
    rebuilt when next needed (several stores may share one, e.g. a test session's)."""
    chosen = os.environ.get("TUNELOOP_CACHE")
    return Path(chosen).expanduser() if chosen else tuneloop_home() / "cache"
