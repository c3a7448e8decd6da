"""Atomic file writes, so a crash never leaves a half-written artefact behind.

Every artefact tuneloop writes goes through these helpers: the bytes land in a temporary
file beside the target and are renamed over it only once complete.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask sets it while reading, which threads must not race


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide reports from the user's group
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final`` whole.

    On any exception the temporary folder is removed and ``final`` is left as it was.

    >>> with staged_dir("runs/demo/adapter") as tmp:  # doctest: +SKIP
    ...     model.save_pretrained(tmp)
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # as a folder made with mkdir would be, not mkdtemp's 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def remove_staging_leftovers(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files and folders (``.NAME.*.tmp``) that a killed process left in ``folder``
    while writing ``name`` (default: any name).

    Only for what no other process is writing (a run being resumed, the run folder about to be created).
    """
    folder = Path(folder)
    pattern = f".{glob.escape(name) if name else '*'}.*.tmp"
    leftovers = sorted(folder.glob(pattern)) if folder.is_dir() else []
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return leftovers
