"""Model versions: finished run folders registered under a project, with lineage and a stage.

A version id is ``<project>:v<n>`` with ``n`` counting up per project. Every version starts as
a ``candidate``; :func:`promote` makes one ``production`` (archiving the one it replaces) and
:func:`rollback` undoes the latest promotion. Every stage change is a row in ``stage_events``
with its reason, so the production history of a project can always be read back, and
:func:`rollback` derives "the previous production" from that history rather than from extra state.

References accepted wherever a version is named (:func:`resolve`): an exact id
(``support-triage:v3``), ``<project>@production`` or ``<project>@candidate`` (the latest candidate).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import NotFoundError, StoreError, TuneloopError
from tuneloop.runs.folder import RunDir
from tuneloop.store import sql
from tuneloop.store.db import now, write_transaction

STAGES = ("candidate", "production", "archived")
STAGE_ALIASES = ("production", "candidate")
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Version:
    id: str
    project: str
    number: int
    run_path: Path
    artifact_path: Path  # what the server loads: the run's adapter/ or model/
    parent_id: str | None
    dataset_hash: str | None
    config_hash: str
    metrics: dict | None  # metrics.json of the run; None when it was registered before `tuneloop eval`
    stage: str
    created_at: float

    @property
    def primary_metric(self) -> tuple[str, float | None, float | None] | None:
        """(name, base score, tuned score) of the run's headline metric, if it was evaluated."""
        if not self.metrics or "primary" not in self.metrics:
            return None
        name = self.metrics["primary"]
        return name, self.metrics.get("base", {}).get(name), self.metrics.get("tuned", {}).get(name)


@dataclass(frozen=True)
class StageEvent:
    version_id: str
    action: str  # register, promote, rollback, archive
    from_stage: str | None
    to_stage: str
    reason: str
    at: float


@dataclass(frozen=True)
class Transition:
    """What a promotion or rollback did: the new production version and the one it archived."""

    production: Version
    archived: Version | None


@dataclass(frozen=True)
class RunFacts:
    """What registration records about a run folder, read from the files the run wrote."""

    project: str
    artifact_path: Path
    dataset_hash: str
    config_hash: str
    metrics: dict | None


# --- reading a run folder -------------------------------------------------------------------


def read_run(run_dir: str | Path) -> RunFacts:
    """Check that ``run_dir`` is a finished run and collect what a version records about it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StoreError(f"{run_dir} is not a folder")
    run, artifact = _finished_run(run_dir)
    config = run.config()
    return RunFacts(
        project=config.project,
        artifact_path=artifact.resolve(),
        dataset_hash=_dataset_hash(run),
        config_hash=config_hash(config),
        metrics=_metrics(run),
    )


def _finished_run(run_dir: Path) -> tuple[RunDir, Path]:
    try:
        run = RunDir.existing(run_dir)
        return run, run.artifact()
    except TuneloopError as err:
        raise StoreError(str(err)) from None  # already names the folder and what is missing


def _dataset_hash(run: RunDir) -> str:
    if not run.manifest_file.is_file():
        raise StoreError(f"cannot register {run.path}: no data.json, so its data cannot be traced")
    try:
        return run.manifest()["dataset_hash"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise StoreError(f"cannot register {run.path}: data.json has no dataset_hash") from None


def _metrics(run: RunDir) -> dict | None:
    if not run.has_metrics():
        return None
    try:
        return run.metrics()
    except json.JSONDecodeError:
        raise StoreError(f"cannot register {run.path}: metrics.json is not valid JSON") from None


def config_hash(config) -> str:
    """sha256 of the resolved config, without ``out``.

    The config.yaml a run writes names its own folder in ``out``, so hashing the file's bytes
    would make every run's hash unique; without it, two runs of the same settings share a hash.
    """
    settings = config.model_dump(mode="json")
    settings.pop("out", None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- registering ----------------------------------------------------------------------------


def register(conn: sqlite3.Connection, run_dir: str | Path, project: str | None = None, parent: str | None = None) -> Version:
    """Record a finished run folder as the next candidate version of ``project`` (default: the run's own).

    ``parent`` is any reference :func:`resolve` accepts: the version this one was derived from.
    """
    run_path = Path(run_dir).resolve()
    facts = read_run(run_path)
    project = check_project_name(project or facts.project)
    with write_transaction(conn):
        _check_not_registered(conn, run_path)
        parent_id = resolve(conn, parent).id if parent else None
        number = conn.execute(sql.NEXT_VERSION_NUMBER, (project,)).fetchone()[0]
        version_id = f"{project}:v{number}"
        conn.execute(sql.INSERT_VERSION, _version_row(version_id, project, number, run_path, parent_id, facts))
        _record_event(conn, version_id, "register", None, "candidate", f"registered from {run_path}")
    return get(conn, version_id)


def check_project_name(name: str) -> str:
    """Project names become ids and aliases (``name:v3``, ``name@production``), so ``:`` and ``@`` are out."""
    if not PROJECT_NAME.match(name):
        raise StoreError(f"invalid project name {name!r}: use letters, digits, '.', '_' and '-' (starting with a letter or digit)")
    return name


def _check_not_registered(conn: sqlite3.Connection, run_path: Path) -> None:
    row = conn.execute(sql.VERSION_BY_RUN_PATH, (str(run_path),)).fetchone()
    if row is not None:
        raise StoreError(f"{run_path} is already registered as {row['id']}")


def _version_row(version_id: str, project: str, number: int, run_path: Path, parent_id: str | None, facts: RunFacts) -> dict:
    return {
        "id": version_id,
        "project": project,
        "number": number,
        "run_path": str(run_path),
        "artifact_path": str(facts.artifact_path),
        "parent_id": parent_id,
        "dataset_hash": facts.dataset_hash,
        "config_hash": facts.config_hash,
        "metrics": None if facts.metrics is None else json.dumps(facts.metrics),
        "stage": "candidate",
        "created_at": now(),
    }


# --- looking versions up --------------------------------------------------------------------


def get(conn: sqlite3.Connection, version_id: str) -> Version:
    row = conn.execute(sql.VERSION_BY_ID, (version_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"unknown model version {version_id!r}")
    return _version(row)


def resolve(conn: sqlite3.Connection, ref: str) -> Version:
    """The version ``ref`` names: ``project:vN``, ``project@production`` or ``project@candidate``."""
    if "@" in ref:
        project, stage = ref.split("@", 1)
        return _by_stage(conn, project, stage)
    if ":" in ref:
        return get(conn, ref)
    raise NotFoundError(f"{ref!r} names no model version: use <project>:v<n>, <project>@production or <project>@candidate")


def _by_stage(conn: sqlite3.Connection, project: str, stage: str) -> Version:
    if stage not in STAGE_ALIASES:
        raise NotFoundError(f"unknown stage alias @{stage}: use @production or @candidate")
    query = sql.PRODUCTION_VERSION if stage == "production" else sql.LATEST_CANDIDATE
    row = conn.execute(query, (project,)).fetchone()
    if row is not None:
        return _version(row)
    if conn.execute(sql.PROJECT_EXISTS, (project,)).fetchone() is None:
        raise NotFoundError(f"unknown project {project!r}: no version of it is registered")
    raise NotFoundError(f"project {project!r} has no {stage} version")


def production(conn: sqlite3.Connection, project: str) -> Version | None:
    """The project's production version, or None when nothing has been promoted."""
    row = conn.execute(sql.PRODUCTION_VERSION, (project,)).fetchone()
    return None if row is None else _version(row)


def list_versions(conn: sqlite3.Connection, project: str | None = None) -> list[Version]:
    return [_version(row) for row in conn.execute(sql.LIST_VERSIONS, {"project": project})]


def lineage(conn: sqlite3.Connection, ref: str) -> list[Version]:
    """The version, then its parent, grandparent, ... up to a version registered without a parent."""
    start = resolve(conn, ref)
    return [_version(row) for row in conn.execute(sql.LINEAGE, (start.id,))]


def history(conn: sqlite3.Connection, ref: str) -> list[StageEvent]:
    """Every stage change of one version, oldest first."""
    version = resolve(conn, ref)
    return [_event(row) for row in conn.execute(sql.VERSION_EVENTS, (version.id,))]


def project_history(conn: sqlite3.Connection, project: str) -> list[StageEvent]:
    """Every stage change of every version of a project, oldest first."""
    return [_event(row) for row in conn.execute(sql.PROJECT_EVENTS, (project,))]


def _version(row: sqlite3.Row) -> Version:
    return Version(
        id=row["id"],
        project=row["project"],
        number=row["number"],
        run_path=Path(row["run_path"]),
        artifact_path=Path(row["artifact_path"]),
        parent_id=row["parent_id"],
        dataset_hash=row["dataset_hash"],
        config_hash=row["config_hash"],
        metrics=None if row["metrics"] is None else json.loads(row["metrics"]),
        stage=row["stage"],
        created_at=row["created_at"],
    )


def _event(row: sqlite3.Row) -> StageEvent:
    return StageEvent(row["version_id"], row["action"], row["from_stage"], row["to_stage"], row["reason"], row["at"])


# --- changing stages ------------------------------------------------------------------------


def promote(conn: sqlite3.Connection, ref: str, reason: str) -> Transition:
    """Make a version production and archive the one it replaces, in one transaction."""
    reason = _check_reason(reason)
    with write_transaction(conn):
        version = resolve(conn, ref)
        if version.stage == "production":
            raise StoreError(f"{version.id} is already production")
        check_servable(version, "promote")
        replaced = production(conn, version.project)
        if replaced is not None:
            _set_stage(conn, replaced, "archived", "promote", f"{reason} (replaced by {version.id})")
        _set_stage(conn, version, "production", "promote", reason)
    return Transition(get(conn, version.id), replaced and get(conn, replaced.id))


def rollback(conn: sqlite3.Connection, project: str, reason: str) -> Transition:
    """Undo the project's latest promotion: archive the current production, restore the one before it.

    Rolling back twice goes back two promotions, as an undo stack would.
    """
    reason = _check_reason(reason)
    with write_transaction(conn):
        current = production(conn, project)
        if current is None:
            raise StoreError(f"project {project!r} has no production version to roll back")
        target = get(conn, _previous_production(conn, project, current.id))
        check_servable(target, "roll back to")
        _set_stage(conn, current, "archived", "rollback", reason)
        _set_stage(conn, target, "production", "rollback", reason)
    return Transition(get(conn, target.id), get(conn, current.id))


def archive(conn: sqlite3.Connection, ref: str, reason: str) -> Version:
    """Retire a candidate (a rejected retraining, say) so ``@candidate`` no longer finds it."""
    reason = _check_reason(reason)
    with write_transaction(conn):
        version = resolve(conn, ref)
        if version.stage != "candidate":
            raise StoreError(f"{version.id} is {version.stage}, only a candidate can be archived; use promote or rollback")
        _set_stage(conn, version, "archived", "archive", reason)
    return get(conn, version.id)


def refuse(conn: sqlite3.Connection, ref: str, reason: str) -> Version:
    """Record why a candidate was kept from production; it stays a candidate (a 'refuse' stage event)."""
    reason = _check_reason(reason)
    with write_transaction(conn):
        version = resolve(conn, ref)
        if version.stage != "candidate":
            raise StoreError(f"{version.id} is {version.stage}; only a candidate can be refused promotion")
        _record_event(conn, version.id, "refuse", "candidate", "candidate", reason)
    return get(conn, version.id)


def check_servable(version: Version, action: str = "serve") -> None:
    """Refuse a version whose run folder or trained artefact is no longer on disk."""
    if not version.run_path.is_dir():
        raise StoreError(f"cannot {action} {version.id}: its run folder {version.run_path} is gone")
    if not version.artifact_path.is_dir():
        raise StoreError(f"cannot {action} {version.id}: {version.artifact_path} is gone")


def _previous_production(conn: sqlite3.Connection, project: str, current_id: str) -> str:
    """Replay the production events as a stack (promote pushes, rollback pops); the entry under the top."""
    stack: list[str] = []
    for row in conn.execute(sql.PRODUCTION_EVENTS, (project,)):
        if row["action"] == "rollback":
            stack.pop()
        else:
            stack.append(row["version_id"])
    if len(stack) < 2 or stack[-1] != current_id:
        raise StoreError(f"project {project!r} has no earlier production version to roll back to")
    return stack[-2]


def _set_stage(conn: sqlite3.Connection, version: Version, stage: str, action: str, reason: str) -> None:
    conn.execute(sql.SET_STAGE, (stage, version.id))
    _record_event(conn, version.id, action, version.stage, stage, reason)


def _record_event(conn: sqlite3.Connection, version_id: str, action: str, from_stage: str | None, to_stage: str, reason: str) -> None:
    conn.execute(sql.INSERT_STAGE_EVENT, (version_id, action, from_stage, to_stage, reason, now()))


def _check_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise StoreError("a stage change needs a reason (it is kept in the stage history)")
    return reason.strip()
