"""The server process's C allocator: glibc's malloc arenas, capped so resident memory levels off under load."""

from __future__ import annotations

import os


def cap_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (unless ``MALLOC_ARENA_MAX`` is set). By default every thread that allocates (the
    engine, the request and tokenising pools: dozens) gets an arena of its own, up to 8 per core, and each keeps
    what it freed; under load the server's resident memory kept growing for minutes (tiny model, 16 clients: +8 MB/s
    over the first 40 s). With two it levels off after ~10 s (bench/serve_reliability.py). The GIL serialises nearly
    every allocation anyway."""
    import ctypes

    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to cap
        return
    M_ARENA_MAX = -8  # from glibc's malloc.h
    libc.mallopt(M_ARENA_MAX, arenas)
