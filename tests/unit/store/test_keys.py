"""API keys: hashed at rest, verified, revoked."""

from __future__ import annotations

import contextlib

import pytest

from tuneloop.errors import NotFoundError, StoreError
from tuneloop.store import db, keys


def test_the_plaintext_key_never_reaches_the_file(store_file):
    with contextlib.closing(db.connect()) as conn:
        key = keys.create_key(conn, "ci")
        on_disk = b"".join(path.read_bytes() for path in store_file.parent.glob("store.sqlite3*"))  # with the WAL
        secret = key.split("_", 2)[2]
        assert key.encode() not in on_disk and secret.encode() not in on_disk
        row = conn.execute("SELECT * FROM api_keys").fetchone()
        assert row["kdf"].startswith("scrypt:") and len(row["hash"]) == 32 and len(row["salt"]) == 16


def test_verify_accepts_the_key_and_nothing_like_it(conn):
    key = keys.create_key(conn, "ci")
    other = keys.create_key(conn, "web")
    assert keys.verify_key(conn, key) == "ci"
    assert keys.verify_key(conn, other) == "web"
    prefix, key_id, secret = key.split("_", 2)
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), f"{prefix}_{key_id}_{other.split('_', 2)[2]}", "tl_00000000_x", "garbage", ""):
        assert keys.verify_key(conn, wrong) is None


def test_revoked_keys_stop_working(conn):
    key = keys.create_key(conn, "ci")
    keys.revoke_key(conn, "ci")
    assert keys.verify_key(conn, key) is None
    [listed] = keys.list_keys(conn)
    assert listed.name == "ci" and listed.revoked_at is not None
    with pytest.raises(StoreError, match="already revoked"):
        keys.revoke_key(conn, "ci")
    with pytest.raises(NotFoundError, match="unknown API key 'nope'"):
        keys.revoke_key(conn, "nope")


def test_names_are_unique_and_sane(conn):
    keys.create_key(conn, "ci")
    with pytest.raises(StoreError, match="already exists"):
        keys.create_key(conn, "ci")
    with pytest.raises(StoreError, match="invalid key name"):
        keys.create_key(conn, "two words")
