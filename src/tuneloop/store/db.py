"""Opening the store: one SQLite file in WAL mode, migrated to the schema this code knows.

Threads: **one connection per thread** (:class:`Store`). Python's sqlite3 connection is a
single transaction context: shared between threads under a lock, the lock would have to be held
for a whole transaction, so every reader would queue behind every writer and one slow request
log would stall model resolution. With a connection per thread, WAL lets any number of readers
run alongside the one writer, and ``busy_timeout`` makes writers wait for each other instead of
failing. A FastAPI server runs sync endpoints on a fixed thread pool, so that is a few dozen
connections at most. Every write goes through :func:`write_transaction` (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from tuneloop.errors import StoreError
from tuneloop.paths import tuneloop_home
from tuneloop.store.sql import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000
SCHEMA_VERSION = len(MIGRATIONS)


def store_path(path: str | Path | None = None) -> Path:
    """The store file: ``path``, else ``$TUNELOOP_STORE``, else ``$TUNELOOP_HOME/store.sqlite3``."""
    chosen = path or os.environ.get("TUNELOOP_STORE") or tuneloop_home() / "store.sqlite3"
    return Path(chosen).expanduser()


def now() -> float:
    """The store's clock (unix seconds); one function so tests and callers agree on the unit."""
    return time.time()


def open_connection(path: str | Path) -> sqlite3.Connection:
    """A configured connection to an existing or new file, without migrating it.

    ``isolation_level=None`` turns off the sqlite3 module's implicit transactions: the store
    opens its own with :func:`write_transaction`, so it always knows when a lock is taken.
    ``check_same_thread=False`` only lets :meth:`Store.close` close a thread's connection from
    the thread that shuts down; no connection is ever used by two threads.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across crashes of the process
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def connect(path: str | Path | None = None) -> sqlite3.Connection:
    """Open the store (see :func:`store_path`) and bring its schema up to date.

    >>> with contextlib.closing(connect()) as conn:  # doctest: +SKIP
    ...     versions.resolve(conn, "support-triage@production")
    """
    conn = open_connection(store_path(path))
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one transaction that holds the write lock from its first statement.

    ``BEGIN IMMEDIATE`` rather than a deferred ``BEGIN``: in WAL mode a transaction that read
    an older snapshot cannot upgrade to a writer and fails at once with SQLITE_BUSY, which
    ``busy_timeout`` cannot help. Taking the lock first makes concurrent writers simply queue.
    Blocks nest: a store change made of several (register a candidate, then promote it) is one transaction,
    so a process killed between them leaves the store as it was before.
    """
    if conn.in_transaction:  # inside another write: part of it, committed or rolled back with it
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this store has not had yet, each in its own transaction; returns the version.

    The version is read again under the write lock, so two processes opening a new store at
    once apply each migration exactly once. A store written by a newer tuneloop is refused
    rather than guessed at.
    """
    check_not_newer(conn)
    for target in range(schema_version(conn) + 1, SCHEMA_VERSION + 1):
        with write_transaction(conn):
            if schema_version(conn) >= target:  # another process got there first
                continue
            for statement in MIGRATIONS[target - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
    return schema_version(conn)


def check_not_newer(conn: sqlite3.Connection) -> None:
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        path = conn.execute("PRAGMA database_list").fetchone()["file"]
        raise StoreError(
            f"the store {path} has schema version {found}, but this tuneloop knows only up to "
            f"{SCHEMA_VERSION}; upgrade tuneloop (or point TUNELOOP_STORE at another file)"
        )


class Store:
    """The store as a multi-threaded process uses it: migrated once, one connection per thread.

    >>> store = Store()  # doctest: +SKIP
    >>> requests.log_request(store.connection(), model="base", prompt="hi", response="hello", latency_ms=12.0)
    """

    def __init__(self, path: str | Path | None = None):
        self.path = store_path(path)
        with contextlib.closing(connect(self.path)):
            pass
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.path)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (at shutdown, once the threads are done with them)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
