"""Where tuneloop keeps what outlives one run: the model cache, replay answers, the store."""

from __future__ import annotations

import os
from pathlib import Path


def tuneloop_home() -> Path:
    """``$TUNELOOP_HOME``, else ``~/.cache/tuneloop``."""
    return Path(os.environ.get("TUNELOOP_HOME", Path.home() / ".cache" / "tuneloop")).expanduser()
