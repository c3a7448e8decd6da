"""Alignment rounds (``tuneloop align``): which feedback each round used, its scores and the gate's decision.

A round reads the feedback of its project that no earlier round read: feedback ids above the last
round's ``feedback_through`` (or, before the first round, everything recorded since the production
version was registered). ``feedback_through`` is the newest feedback id in the store when the round
read it, so feedback that arrives while a round trains waits for the next one.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from tuneloop.store import sql
from tuneloop.store.db import now, write_transaction


@dataclass(frozen=True)
class AlignRound:
    id: int
    project: str
    production_id: str
    candidate_id: str
    objective: str
    feedback_ids: list[int]
    feedback_through: int
    scores: dict
    promoted: bool
    reason: str
    created_at: float


@dataclass(frozen=True)
class Window:
    """The feedback a new round may read: ids above ``after``, recorded at or after ``since`` (None: any time)."""

    after: int
    since: float | None
    through: int  # the newest feedback id in the store now: what the round will record as read

    def describe(self) -> str:
        return f"since align round feedback #{self.after}" if self.since is None else "since the production version was registered"


def feedback_window(conn: sqlite3.Connection, project: str, registered_at: float) -> Window:
    """Feedback after the project's last round, or (no round yet) since ``registered_at``."""
    last = last_round(conn, project)
    through = conn.execute(sql.MAX_FEEDBACK_ID).fetchone()[0]
    if last is None:
        return Window(0, registered_at, through)
    return Window(last.feedback_through, None, through)


def new_feedback_ids(conn: sqlite3.Connection, project: str, window: Window) -> set[int]:
    """Ids of the project's feedback (every kind) inside ``window``."""
    params = {"project": project, "after": window.after, "since": window.since}
    return {row[0] for row in conn.execute(sql.NEW_FEEDBACK_IDS, params) if row[0] <= window.through}


def record_round(
    conn: sqlite3.Connection, *, project: str, production_id: str, candidate_id: str, objective: str,
    feedback_ids: list[int], feedback_through: int, scores: dict, promoted: bool, reason: str,
) -> AlignRound:  # fmt: skip
    row = {
        "project": project, "production_id": production_id, "candidate_id": candidate_id, "objective": objective,
        "feedback_ids": json.dumps(sorted(feedback_ids)), "feedback_through": feedback_through,
        "scores": json.dumps(scores), "promoted": int(promoted), "reason": reason, "created_at": now(),
    }  # fmt: skip
    with write_transaction(conn):
        round_id = conn.execute(sql.INSERT_ALIGN_ROUND, row).lastrowid
    return next(r for r in rounds(conn, project) if r.id == round_id)


def rounds(conn: sqlite3.Connection, project: str) -> list[AlignRound]:
    """The project's rounds, oldest first."""
    return [_round(row) for row in conn.execute(sql.ALIGN_ROUNDS, (project,))]


def last_round(conn: sqlite3.Connection, project: str) -> AlignRound | None:
    row = conn.execute(sql.LAST_ALIGN_ROUND, (project,)).fetchone()
    return None if row is None else _round(row)


def _round(row: sqlite3.Row) -> AlignRound:
    fields = dict(row)
    fields.update(feedback_ids=json.loads(fields["feedback_ids"]), scores=json.loads(fields["scores"]), promoted=bool(fields["promoted"]))
    return AlignRound(**fields)
