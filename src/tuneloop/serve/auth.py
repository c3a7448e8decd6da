"""API keys on every endpoint, with a short cache so each request does not pay scrypt (~70 ms)."""

from __future__ import annotations

import hashlib
import threading
import time

from tuneloop.store.keys import verify_key


class KeyChecker:
    """``name_of(key)`` -> the key's name, or None; a revoked key stops working within ``ttl_s``."""

    def __init__(self, store, ttl_s: float = 10.0):
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def name_of(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).hexdigest()  # the cache never holds the key itself
        with self._lock:
            cached = self._cache.get(digest)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        name = verify_key(self.store.connection(), key)
        if name is not None:
            with self._lock:
                self._cache[digest] = (name, time.monotonic() + self.ttl_s)
        return name


def bearer_key(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header."""
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None
