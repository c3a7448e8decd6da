"""Opening the store: file location, pragmas, versioned migrations, threads."""

from __future__ import annotations

import contextlib
import sqlite3
import threading

import pytest

from tuneloop.errors import StoreError
from tuneloop.store import db, requests


def tables(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_store_path_prefers_argument_then_env_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNELOOP_STORE", raising=False)
    assert db.store_path() == tmp_path / "home" / "store.sqlite3"
    monkeypatch.setenv("TUNELOOP_STORE", str(tmp_path / "env.sqlite3"))
    assert db.store_path() == tmp_path / "env.sqlite3"
    assert db.store_path(tmp_path / "arg.sqlite3") == tmp_path / "arg.sqlite3"


def test_connect_creates_the_file_in_wal_mode_with_foreign_keys(store_file):
    with contextlib.closing(db.connect()) as conn:
        assert store_file.exists()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
        assert {"versions", "stage_events", "requests", "feedback", "api_keys"} <= tables(conn)


def test_migrations_apply_once_and_reopening_is_a_no_op(store_file):
    with contextlib.closing(db.connect()) as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION == len(db.MIGRATIONS)
        requests.log_request(conn, model="base", prompt="p", response="r", latency_ms=1.0)
    for _ in range(2):
        with contextlib.closing(db.connect()) as conn:
            assert db.migrate(conn) == db.SCHEMA_VERSION
            assert len(requests.recent(conn)) == 1  # data survives; tables were not recreated


def test_a_new_migration_applies_only_itself(store_file, monkeypatch):
    with contextlib.closing(db.connect()):
        pass
    extended = (*db.MIGRATIONS, ("CREATE TABLE later (x INTEGER)",))
    monkeypatch.setattr(db, "MIGRATIONS", extended)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(extended))
    with contextlib.closing(db.connect()) as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION
        assert "later" in tables(conn)


def test_a_failing_migration_leaves_the_store_as_it_was(store_file, monkeypatch):
    with contextlib.closing(db.connect()):
        pass
    extended = (*db.MIGRATIONS, ("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL"))
    monkeypatch.setattr(db, "MIGRATIONS", extended)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(extended))
    with pytest.raises(sqlite3.OperationalError):
        db.connect()
    with contextlib.closing(db.open_connection(store_file)) as conn:
        assert db.schema_version(conn) == len(db.MIGRATIONS) - 1
        assert "half_done" not in tables(conn)


def test_a_store_from_a_newer_tuneloop_is_refused(store_file):
    with contextlib.closing(db.connect()) as conn:
        conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=rf"schema version {db.SCHEMA_VERSION + 1}.*upgrade tuneloop"):
        db.connect()


def test_concurrent_writes_from_threads_all_land(store_file):
    """The server's thread pool: each thread its own connection, all writing at once (WAL + BEGIN IMMEDIATE)."""
    threads, per_thread = 8, 25
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(store: db.Store, worker: int) -> None:
        try:
            conn = store.connection()
            start.wait()
            for i in range(per_thread):
                requests.log_request(conn, model="base", prompt=f"{worker}-{i}", response="r", latency_ms=1.0)
                requests.recent(conn, limit=5)  # readers interleave with writers
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    with db.Store() as store:
        pool = [threading.Thread(target=work, args=(store, n)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert errors == []
        assert len(requests.recent(store.connection(), limit=1000)) == threads * per_thread


def test_store_gives_each_thread_its_own_connection(store_file):
    with db.Store() as store:
        mine = store.connection()
        theirs = []
        thread = threading.Thread(target=lambda: theirs.append(store.connection()))
        thread.start()
        thread.join()
        assert store.connection() is mine
        assert theirs[0] is not mine


def test_the_refuse_migration_keeps_every_stage_event(store_file, monkeypatch):
    """A store made before 'refuse' existed (schema 2) keeps its history through the table rebuild."""
    migrations = db.MIGRATIONS
    monkeypatch.setattr(db, "MIGRATIONS", migrations[:2])
    monkeypatch.setattr(db, "SCHEMA_VERSION", 2)
    with contextlib.closing(db.connect()) as conn:
        with db.write_transaction(conn):
            conn.execute("INSERT INTO versions VALUES ('p:v1', 'p', 1, '/r', '/r/adapter', NULL, NULL, 'h', NULL, 'candidate', 1.0)")
            conn.execute("INSERT INTO stage_events (version_id, action, from_stage, to_stage, reason, at) VALUES ('p:v1', 'register', NULL, 'candidate', 'r', 1.0)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO stage_events (version_id, action, to_stage, reason, at) VALUES ('p:v1', 'refuse', 'candidate', 'x', 2.0)")
    monkeypatch.setattr(db, "MIGRATIONS", migrations)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(migrations))
    with contextlib.closing(db.connect()) as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION == 3
        assert [tuple(row) for row in conn.execute("SELECT id, action, reason FROM stage_events")] == [(1, "register", "r")]
        conn.execute("INSERT INTO stage_events (version_id, action, from_stage, to_stage, reason, at) VALUES ('p:v1', 'refuse', 'candidate', 'candidate', 'x', 2.0)")
        assert "stage_events_version" in {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_nested_write_is_part_of_the_outer_transaction_and_rolls_back_with_it(store_file):
    with contextlib.closing(db.connect()) as conn:
        with pytest.raises(RuntimeError):
            with db.write_transaction(conn):
                with db.write_transaction(conn):
                    conn.execute("INSERT INTO api_keys (name, key_id, kdf, salt, hash, created_at) VALUES ('inner', 'k', 'none', x'00', x'00', 1.0)")
                assert conn.in_transaction  # the inner block did not commit
                raise RuntimeError("the outer change fails")
        assert list(conn.execute("SELECT name FROM api_keys")) == []
        with db.write_transaction(conn):
            with db.write_transaction(conn):
                conn.execute("INSERT INTO api_keys (name, key_id, kdf, salt, hash, created_at) VALUES ('inner', 'k', 'none', x'00', x'00', 1.0)")
        assert [row[0] for row in conn.execute("SELECT name FROM api_keys")] == ["inner"]
