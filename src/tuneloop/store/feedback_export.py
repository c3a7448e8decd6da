"""Feedback as data files: the store's preferences, ratings and corrections of one model, written as
``pairs``, ``ratings`` and ``chat`` rows that ``tuneloop data check`` reads back with nothing dropped.

Every row carries, beside the format's own fields, a ``feedback`` list: the feedback record(s) it
came from and the request(s) they judged (request id, the version that answered, when). A record
the format would drop (a preference between two identical answers, a rating of an empty answer,
a chat request whose messages end with the assistant's) is left out and counted with its reason;
a record that repeats an earlier row (the same prompt and answers chosen twice, the same answer
rated good twice) joins that row's ``feedback`` list instead of becoming a duplicate row.

>>> export = export_feedback(conn, "support-triage@production", "preferences")  # doctest: +SKIP
>>> write_export(export, "preferences.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tuneloop.atomic import write_text_atomic
from tuneloop.config import DataConfig
from tuneloop.data.formats import FORMATS, RowError
from tuneloop.errors import NotFoundError, StoreError
from tuneloop.store import sql, versions
from tuneloop.store.requests import logged_conversation, logged_messages


@dataclass(frozen=True)
class Scope:
    """Whose feedback: one version's, or (``version_id`` None) every answer logged under the project."""

    project: str
    version_id: str | None

    def __str__(self) -> str:
        return self.version_id or f"project {self.project!r}"


@dataclass(frozen=True)
class LeftOut:
    feedback_id: int
    reason: str  # "field: reason", as tuneloop data check would report the row

    def __str__(self) -> str:
        return f"feedback {self.feedback_id}: {self.reason}"


@dataclass
class FeedbackExport:
    kind: str  # preferences, ratings, corrections
    format: str  # the data format of the rows
    scope: Scope
    rows: list[dict] = field(default_factory=list)
    records: int = 0  # feedback records read from the store
    merged: int = 0  # records that repeated an earlier row and joined its feedback list
    left_out: list[LeftOut] = field(default_factory=list)


# --- the rows of each kind ------------------------------------------------------------------


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def version_name(version_id: str | None) -> str:
    return version_id or "base"  # a request with no version was answered by the base model


def preference_row(record: sqlite3.Row) -> dict:
    """A ``pairs`` row: the prompt (a chat request's messages, or its text), the chosen and rejected answers."""
    source = {"feedback_id": record["id"], "given_at": when(record["created_at"])}
    for side in ("chosen", "rejected"):
        source[f"{side}_request_id"] = record[f"{side}_request_id"]
        source[f"{side}_version"] = version_name(record[f"{side}_version"])
        source[f"{side}_requested_at"] = when(record[f"{side}_requested_at"])
    prompt = logged_conversation(record["prompt"]) or record["prompt"]
    return {"prompt": prompt, "chosen": record["chosen"], "rejected": record["rejected"], "feedback": [source]}


def rating_row(record: sqlite3.Row) -> dict:
    """A ``ratings`` row: thumbs up is ``label: true``, thumbs down ``false`` (the latest vote on an answer counts)."""
    prompt = logged_conversation(record["prompt"]) or record["prompt"]
    return {"prompt": prompt, "completion": record["response"], "label": record["rating"] == 1, "feedback": [request_source(record)]}


def correction_row(record: sqlite3.Row) -> dict:
    """A ``chat`` row: the request's conversation answered as the user corrected it (the model's answer in ``feedback``)."""
    messages = [*logged_messages(record["prompt"]), {"role": "assistant", "content": record["correction"]}]
    return {"messages": messages, "feedback": [{**request_source(record), "response": record["response"]}]}


def request_source(record: sqlite3.Row) -> dict:
    return {
        "feedback_id": record["id"],
        "given_at": when(record["created_at"]),
        "request_id": record["request_id"],
        "version": version_name(record["version_id"]),
        "requested_at": when(record["requested_at"]),
    }


@dataclass(frozen=True)
class Kind:
    format: str  # the data format its rows are written in
    query: str  # its records in a scope (sql.EXPORT_*)
    row: Callable[[sqlite3.Row], dict]  # one record -> one row
    row_names: tuple[str, str]  # what one row is called, and several


KINDS: dict[str, Kind] = {
    "preferences": Kind("pairs", sql.EXPORT_PREFERENCES, preference_row, ("pair", "pairs")),
    "ratings": Kind("ratings", sql.EXPORT_RATINGS, rating_row, ("rating", "ratings")),
    "corrections": Kind("chat", sql.EXPORT_CORRECTIONS, correction_row, ("conversation", "conversations")),
}


# --- exporting ------------------------------------------------------------------------------


def scope_of(conn: sqlite3.Connection, name: str) -> Scope:
    """``<project>:v<n>`` or ``<project>@production`` / ``@candidate``: that version; a project name: all of it."""
    if "@" in name or ":" in name:
        version = versions.resolve(conn, name)
        return Scope(version.project, version.id)
    if conn.execute(sql.PROJECT_EXISTS, (name,)).fetchone() is None:
        raise NotFoundError(
            f"unknown project {name!r}: no version of it is registered "
            "(name a version <project>:v<n>, <project>@production, or a project)"
        )
    return Scope(name, None)


def export_feedback(conn: sqlite3.Connection, name: str, kind: str) -> FeedbackExport:
    """The rows of ``kind`` for the model ``name`` names; a StoreError when there is nothing to export."""
    if kind not in KINDS:
        raise StoreError(f"unknown feedback kind {kind!r}: choose one of {', '.join(KINDS)}")
    scope = scope_of(conn, name)
    records = conn.execute(KINDS[kind].query, {"project": scope.project, "version_id": scope.version_id}).fetchall()
    if not records:
        raise StoreError(f"nothing to export: the store holds no {kind} for {scope}")
    export = FeedbackExport(kind, KINDS[kind].format, scope, records=len(records))
    keep_readable_rows(export, [(record["id"], KINDS[kind].row(record)) for record in records])
    if not export.rows:
        reasons = "; ".join(str(left) for left in export.left_out[:3])
        raise StoreError(f"nothing to export: none of the {len(records)} {kind} for {scope} makes a usable {export.format} row ({reasons})")
    return export


def export_window(conn: sqlite3.Connection, project: str, kind: str, feedback_ids: set[int]) -> FeedbackExport:
    """The project's rows of ``kind`` made from the feedback records in ``feedback_ids`` (``tuneloop align``'s
    window); unlike :func:`export_feedback`, an empty export is no error: the caller counts the rows."""
    records = [r for r in conn.execute(KINDS[kind].query, {"project": project, "version_id": None}) if r["id"] in feedback_ids]
    export = FeedbackExport(kind, KINDS[kind].format, Scope(project, None), records=len(records))
    keep_readable_rows(export, [(record["id"], KINDS[kind].row(record)) for record in records])
    return export


def keep_readable_rows(export: FeedbackExport, rows: list[tuple[int, dict]]) -> None:
    """Each row read as ``tuneloop data check --format FORMAT`` reads it: the ones it would drop are left
    out with its reason, and a repeat of an earlier row joins that row's ``feedback`` list."""
    cfg = DataConfig(format=export.format)
    normalise = FORMATS[export.format]
    kept: dict[tuple, dict] = {}
    for feedback_id, row in rows:
        try:
            key = normalise(row, cfg).duplicate_key()
        except RowError as err:
            export.left_out.append(LeftOut(feedback_id, str(err)))
            continue
        if key in kept:
            kept[key]["feedback"] += row["feedback"]
            export.merged += 1
        else:
            kept[key] = row
    export.rows = list(kept.values())


def check_out_path(path: str | Path) -> Path:
    """Exports are JSON lines (``tuneloop data check`` reads a file by its suffix)."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise StoreError(f"--out {path}: feedback is exported as JSON lines; name a .jsonl file")
    return path


def write_export(export: FeedbackExport, path: str | Path) -> Path:
    """Write the rows as JSONL, atomically (a failed export leaves no partial file)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in export.rows)
    return write_text_atomic(check_out_path(path), text)
