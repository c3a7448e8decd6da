"""Atomic writes: complete files or none, with the permissions an ordinary write would give."""

from __future__ import annotations

import os
import stat

import pytest

from tuneloop.atomic import _UMASK, staged_dir, write_text_atomic


def test_written_file_has_umask_permissions_not_mkstemps_0600(tmp_path):
    path = write_text_atomic(tmp_path / "report.md", "hello")
    assert path.read_text() == "hello"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_UMASK


def test_staged_dir_replaces_whole_and_keeps_the_old_one_on_failure(tmp_path):
    final = tmp_path / "adapter"
    with staged_dir(final) as tmp:
        (tmp / "weights").write_text("v1")
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o777 & ~_UMASK
    with pytest.raises(RuntimeError), staged_dir(final) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert (final / "weights").read_text() == "v1" and [p.name for p in tmp_path.iterdir()] == ["adapter"]
