"""API keys: shown once at creation, stored only as a salted scrypt hash, revocable by name.

A key reads ``tl_<key id>_<secret>``. The key id is public and finds the one row to check, so
verifying costs one hash however many keys exist; the secret is 32 random bytes and never
stored. Verification takes the same path whether or not the key id exists, and compares
hashes with :func:`hmac.compare_digest`, so timing tells an attacker nothing about either.

The scrypt cost is modest (n=2**14: ~16 MiB, tens of milliseconds): the secret is random, not a
password, so a slow hash adds little, and the server pays it on every request. The parameters
are stored with each hash, so they can be raised later without invalidating existing keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass

from tuneloop.errors import NotFoundError, StoreError
from tuneloop.store import sql
from tuneloop.store.db import now, write_transaction

PREFIX = "tl"
KDF = "scrypt:n=16384,r=8,p=1"
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
_DUMMY_SALT = b"\0" * 16  # hashed against when the key id is unknown, to keep timing equal


@dataclass(frozen=True)
class ApiKey:
    name: str
    key_id: str  # public part of the key, shown by `tuneloop keys ls`
    created_at: float
    revoked_at: float | None


def create_key(conn: sqlite3.Connection, name: str) -> str:
    """Create a key called ``name`` and return it in plain text; this is the only time it is seen."""
    if not KEY_NAME.match(name or ""):
        raise StoreError(f"invalid key name {name!r}: use letters, digits, '.', '_', '@' and '-'")
    key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
    with write_transaction(conn):
        if conn.execute(sql.KEY_BY_NAME, (name,)).fetchone() is not None:
            raise StoreError(f"an API key named {name!r} already exists (names stay taken after revocation)")
        conn.execute(sql.INSERT_KEY, (name, key_id, KDF, salt, _hash(secret, salt, KDF), now()))
    return f"{PREFIX}_{key_id}_{secret}"


def verify_key(conn: sqlite3.Connection, key: str) -> str | None:
    """The name of the live key ``key`` is, or None (malformed, unknown, wrong secret or revoked)."""
    key_id, secret = _split(key)
    row = conn.execute(sql.KEY_BY_KEY_ID, (key_id,)).fetchone() if key_id else None
    salt, kdf, stored = (row["salt"], row["kdf"], row["hash"]) if row else (_DUMMY_SALT, KDF, b"")
    matches = hmac.compare_digest(_hash(secret, salt, kdf), stored)
    if not matches or row is None or row["revoked_at"] is not None:
        return None
    return row["name"]


def revoke_key(conn: sqlite3.Connection, name: str) -> None:
    """Stop a key working from now on; the row stays, so its requests can still be attributed."""
    with write_transaction(conn):
        row = conn.execute(sql.KEY_BY_NAME, (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown API key {name!r}")
        if row["revoked_at"] is not None:
            raise StoreError(f"API key {name!r} is already revoked")
        conn.execute(sql.REVOKE_KEY, (now(), name))


def list_keys(conn: sqlite3.Connection) -> list[ApiKey]:
    return [ApiKey(**dict(row)) for row in conn.execute(sql.LIST_KEYS)]


def _split(key: str) -> tuple[str | None, str]:
    """(key id, secret) of a well-formed key; (None, whatever) otherwise, still hashed for equal timing."""
    parts = (key or "").split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        return None, key or ""
    return parts[1], parts[2]


def _hash(secret: str, salt: bytes, kdf: str) -> bytes:
    name, _, settings = kdf.partition(":")
    if name != "scrypt":
        raise StoreError(f"unknown key hash {name!r} in the store; upgrade tuneloop")
    cost = {k: int(v) for k, v in (item.split("=") for item in settings.split(","))}
    return hashlib.scrypt(secret.encode(), salt=salt, n=cost["n"], r=cost["r"], p=cost["p"], dklen=32)
