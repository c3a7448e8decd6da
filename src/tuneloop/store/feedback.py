"""Feedback on logged answers: ratings, pairwise preferences and corrected answers.

Each kind feeds a different consumer. Ratings give the monitor a negative rate per version;
corrections become supervised rows and preferences become preference pairs for retraining.
Every record must point at a logged request, so feedback can always be traced to the prompt,
the answer and the version it judged.

Windows differ on purpose: :func:`rating_counts` counts by *request* time (of the answers a
version gave in the last hour, how many were rated down), while :func:`corrections` and
:func:`preferences` filter by *feedback* time (what arrived since the last retraining).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from tuneloop.errors import StoreError
from tuneloop.store import sql
from tuneloop.store.db import now, write_transaction
from tuneloop.store.requests import LoggedRequest, get_request

RATINGS = {"up": 1, "down": -1}


@dataclass(frozen=True)
class RatingCounts:
    project: str | None
    version_id: str | None  # None: the base model
    requests: int  # answered in the window
    up: int
    down: int

    @property
    def negative_rate(self) -> float | None:
        """Share of rated answers rated down; None when none was rated."""
        rated = self.up + self.down
        return self.down / rated if rated else None


@dataclass(frozen=True)
class Correction:
    id: int
    request_id: str
    project: str | None
    version_id: str | None
    prompt: str
    response: str  # what the model said
    correction: str  # what it should have said
    created_at: float


@dataclass(frozen=True)
class Preference:
    id: int
    chosen_id: str
    rejected_id: str
    project: str | None
    prompt: str
    chosen: str
    rejected: str
    chosen_version: str | None
    rejected_version: str | None
    created_at: float


# --- recording ------------------------------------------------------------------------------


def record_rating(conn: sqlite3.Connection, request_id: str, rating: str, comment: str | None = None) -> int:
    """Thumbs ``"up"`` or ``"down"`` on one answer; a later rating of the same answer replaces it in counts."""
    if rating not in RATINGS:
        raise StoreError(f"rating must be 'up' or 'down', got {rating!r}")
    get_request(conn, request_id)
    return _insert(conn, request_id=request_id, kind="rating", rating=RATINGS[rating], comment=comment)


def record_preference(conn: sqlite3.Connection, chosen_id: str, rejected_id: str, comment: str | None = None) -> int:
    """The answer of ``chosen_id`` is better than that of ``rejected_id``, both to the same prompt."""
    if chosen_id == rejected_id:
        raise StoreError("a preference needs two different requests")
    chosen, rejected = get_request(conn, chosen_id), get_request(conn, rejected_id)
    _check_same_prompt(chosen, rejected)
    return _insert(conn, request_id=chosen_id, kind="preference", rejected_id=rejected_id, comment=comment)


def record_correction(conn: sqlite3.Connection, request_id: str, correction: str, comment: str | None = None) -> int:
    """The answer the model should have given to one logged request."""
    if not correction or not correction.strip():
        raise StoreError("a correction needs the corrected answer (it was empty)")
    get_request(conn, request_id)
    return _insert(conn, request_id=request_id, kind="correction", correction=correction, comment=comment)


def _check_same_prompt(chosen: LoggedRequest, rejected: LoggedRequest) -> None:
    """A preference pair trains on one prompt with two answers; pairs over different prompts teach nothing."""
    if chosen.prompt != rejected.prompt:
        raise StoreError(f"a preference compares two answers to the same prompt; {chosen.id} and {rejected.id} have different prompts")


def _insert(conn: sqlite3.Connection, **fields) -> int:
    row = {"rating": None, "rejected_id": None, "correction": None, "comment": None, "created_at": now(), **fields}
    with write_transaction(conn):
        return conn.execute(sql.INSERT_FEEDBACK, row).lastrowid


# --- reading, for the monitor and retraining ------------------------------------------------


def rating_counts(
    conn: sqlite3.Connection, *, project: str | None = None, since: float | None = None, until: float | None = None
) -> list[RatingCounts]:
    """Per project and version: answers given in [since, until) and how many were rated up and down."""
    params = {"project": project, "since": since, "until": until}
    return [RatingCounts(**dict(row)) for row in conn.execute(sql.RATING_COUNTS, params)]


def corrections(conn: sqlite3.Connection, *, project: str | None = None, since: float | None = None) -> list[Correction]:
    """Corrected answers recorded since ``since``, oldest first, with the prompt they correct."""
    return [Correction(**dict(row)) for row in conn.execute(sql.CORRECTIONS, {"project": project, "since": since})]


def preferences(conn: sqlite3.Connection, *, project: str | None = None, since: float | None = None) -> list[Preference]:
    """Preference pairs recorded since ``since``, oldest first, with the prompt and both answers."""
    return [Preference(**dict(row)) for row in conn.execute(sql.PREFERENCES, {"project": project, "since": since})]
