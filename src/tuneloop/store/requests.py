"""The request log: every answer the server gives, with the version that gave it.

The log is what feedback points at (by request id) and what the monitor reads. A request's id
is random rather than a counter, so a client can only leave feedback on answers it was given.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass

from tuneloop.errors import NotFoundError
from tuneloop.store import sql
from tuneloop.store.db import now, write_transaction


@dataclass(frozen=True)
class LoggedRequest:
    id: str
    project: str | None
    version_id: str | None  # None: the base model answered
    model: str  # what the client asked for: 'base', a version id or an alias
    prompt: str
    response: str
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    api_key: str | None  # name of the key that sent it
    created_at: float


def log_request(
    conn: sqlite3.Connection,
    *,
    model: str,
    prompt: str,
    response: str,
    latency_ms: float,
    version_id: str | None = None,
    project: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    api_key: str | None = None,
    at: float | None = None,
    request_id: str | None = None,
) -> str:
    """Record one answered request; returns its id (give it to the client for feedback).

    ``project`` defaults to the version's project; pass it for base-model answers that belong
    to a project (an A/B comparison against the base, say). A chat prompt is stored as the
    caller serialises it (JSON of the messages, typically). A streaming server names the request
    (:func:`new_request_id`) before it is answered, so every chunk carries the id feedback will use.
    """
    request_id = request_id or new_request_id()
    row = {
        "id": request_id,
        "project": project or (version_id.split(":", 1)[0] if version_id else None),
        "version_id": version_id,
        "model": model,
        "prompt": prompt,
        "response": response,
        "latency_ms": latency_ms,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "api_key": api_key,
        "created_at": now() if at is None else at,
    }
    try:
        with write_transaction(conn):
            conn.execute(sql.INSERT_REQUEST, row)
    except sqlite3.IntegrityError:
        raise NotFoundError(f"cannot log a request for unknown model version {version_id!r}") from None
    return request_id


def new_request_id() -> str:
    """Random, so one client cannot guess another's request ids."""
    return "req_" + secrets.token_hex(12)


def get_request(conn: sqlite3.Connection, request_id: str) -> LoggedRequest:
    row = conn.execute(sql.REQUEST_BY_ID, (request_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"unknown request id {request_id!r}")
    return _request(row)


def recent(
    conn: sqlite3.Connection,
    *,
    project: str | None = None,
    version_id: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[LoggedRequest]:
    """The latest requests, newest first, optionally of one project or version and after ``since``."""
    params = {"project": project, "version_id": version_id, "since": since, "limit": limit}
    return [_request(row) for row in conn.execute(sql.RECENT_REQUESTS, params)]


def logged_conversation(prompt: str) -> list[dict] | None:
    """The messages of a chat request (logged as their JSON); None for a plain-text prompt."""
    try:
        messages = json.loads(prompt)
    except json.JSONDecodeError:
        return None
    if isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m for m in messages):
        return [{"role": m["role"], "content": m.get("content", "")} for m in messages]
    return None


def logged_messages(prompt: str) -> list[dict]:
    """The conversation a logged request sent: a chat request's messages, a plain prompt as a user turn."""
    return logged_conversation(prompt) or [{"role": "user", "content": prompt}]


def _request(row: sqlite3.Row) -> LoggedRequest:
    return LoggedRequest(**{field: row[field] for field in LoggedRequest.__dataclass_fields__})
