"""``tuneloop serve`` caps glibc's malloc arenas: threads that allocate share two instead of taking one each
(each arena keeps what it freed, so the server's memory kept growing under load)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COUNT_ARENAS = r"""
import ctypes, sys, tempfile, threading
from tuneloop.serve.malloc import cap_malloc_arenas

if sys.argv[1] == "capped":
    cap_malloc_arenas()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes, libc.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]

all_alive = threading.Barrier(8)

def allocate():  # each thread allocates while all 8 live, so none inherits the arena of one that ended
    block = libc.malloc(4096)
    all_alive.wait()
    libc.free(block)

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile("r", suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(report.read().count("<heap nr="))
"""


def arenas_after_eight_threads_allocate(mode: str) -> int:
    env = {name: value for name, value in os.environ.items() if name != "MALLOC_ARENA_MAX"}
    return int(subprocess.run([sys.executable, "-c", COUNT_ARENAS, mode], env=env, capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_threads_that_allocate_share_two_arenas():
    assert arenas_after_eight_threads_allocate("default") > 2  # what the cap is for: one arena per thread
    assert arenas_after_eight_threads_allocate("capped") <= 2
