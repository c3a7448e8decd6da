"""``tuneloop models``, ``tuneloop keys`` and ``tuneloop feedback``: the store's commands, added to the main
app as sub-apps.

The store file is ``$TUNELOOP_STORE``, else ``$TUNELOOP_HOME/store.sqlite3``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator, Optional

import typer

from tuneloop.cli.gate_options import MAX_BIAS_INCREASE, MAX_HALLUCINATION_INCREASE, MAX_MIA_AUC, REQUIRE_DP, trust_limits
from tuneloop.cli.support import user_errors
from tuneloop.errors import TuneloopError
from tuneloop.loop.trust_gate import decide_trust, trust_results
from tuneloop.store import feedback_export, keys, versions
from tuneloop.store.db import connect

models_app = typer.Typer(help="Registered model versions: lineage, stages, promotion and rollback.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the server: create (shown once), list, revoke.", no_args_is_help=True)
feedback_app = typer.Typer(help="What users said about served answers, as data files to train on.", no_args_is_help=True)


@contextlib.contextmanager
def open_store() -> Iterator:
    with contextlib.closing(connect()) as conn:
        yield conn


# --- tuneloop models ------------------------------------------------------------------------


@models_app.command("register")
@user_errors
def register_command(
    run: Path = typer.Argument(..., help="Finished run folder (config.yaml, data.json, adapter/ or model/)."),
    project: Optional[str] = typer.Option(None, help="Project to register it under (default: the run's config project)."),
    parent: Optional[str] = typer.Option(None, help="Version it was derived from: <project>:v<n> or <project>@production."),
):
    """Record a finished run as the next candidate version of its project."""
    with open_store() as conn:
        version = versions.register(conn, run, project, parent)
    typer.echo(f"registered {version.id} (candidate) from {version.run_path}")


@models_app.command("ls")
@user_errors
def ls_command(project: Optional[str] = typer.Option(None, help="Only this project's versions.")):
    """List registered versions with their stage and headline metric."""
    with open_store() as conn:
        found = versions.list_versions(conn, project)
    if not found:
        typer.echo(f"no versions of {project!r} registered" if project else "no model versions registered")
        return
    _print(_versions_table(found))


@models_app.command("show")
@user_errors
def show_command(version: str = typer.Argument(..., help="<project>:v<n>, <project>@production or <project>@candidate.")):
    """One version: where it lives, its data and config hashes, metric, lineage and stage history."""
    with open_store() as conn:
        found = versions.resolve(conn, version)
        chain, events = versions.lineage(conn, found.id), versions.history(conn, found.id)
    _print(_details(found, chain))
    _print(_history_table(events))


@models_app.command("promote")
@user_errors
def promote_command(
    version: str = typer.Argument(..., help="<project>:v<n> or <project>@candidate."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the stage history)."),
    max_bias_increase: Optional[float] = MAX_BIAS_INCREASE,
    max_mia_auc: Optional[float] = MAX_MIA_AUC,
    max_hallucination_increase: Optional[float] = MAX_HALLUCINATION_INCREASE,
    require_dp: bool = REQUIRE_DP,
):
    """Make a version production; the current production version is archived. With trust limits, the version's
    audits (bias, privacy, hallucination: read from its run, or run now) must hold them, else it stays a candidate
    with the reason recorded, and the command exits 2."""
    limits = trust_limits(max_bias_increase, max_mia_auc, max_hallucination_increase, require_dp)
    with open_store() as conn:
        if limits.active():
            check_trust(conn, versions.resolve(conn, version), limits)
        change = versions.promote(conn, version, reason)
    archived = f"; {change.archived.id} archived" if change.archived else ""
    typer.echo(f"{change.production.id} is now production{archived}")


@models_app.command("rollback")
@user_errors
def rollback_command(
    project: str = typer.Argument(..., help="Project whose latest promotion to undo."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the stage history)."),
):
    """Restore the project's previous production version; the current one is archived."""
    with open_store() as conn:
        change = versions.rollback(conn, project, reason)
    typer.echo(f"{change.production.id} is production again; {change.archived.id} archived")


def check_trust(conn, version, limits) -> None:
    """Refuse the promotion (recorded in the store, then a user error) when a trust limit fails."""
    trusted, why = decide_trust(trust_results(limits, version.run_path))
    if not trusted:
        if version.stage == "candidate":
            versions.refuse(conn, version.id, why)
        raise TuneloopError(f"{version.id} not promoted: {why}")
    typer.echo(why)


# --- tuneloop keys --------------------------------------------------------------------------


@keys_app.command("create")
@user_errors
def keys_create_command(name: str = typer.Argument(..., help="Who or what the key is for (unique).")):
    """Create an API key and print it; only its hash is stored, so this is the only time it is shown."""
    with open_store() as conn:
        key = keys.create_key(conn, name)
    typer.echo(key)
    typer.echo(f"API key {name!r} created; copy it now, it cannot be shown again", err=True)


@keys_app.command("ls")
@user_errors
def keys_ls_command():
    """List API keys (names and public key ids; never the keys)."""
    from rich.table import Table
    from rich.text import Text

    with open_store() as conn:
        found = keys.list_keys(conn)
    if not found:
        typer.echo("no API keys")
        return
    table = Table(title="API keys")
    for column in ("name", "key id", "created", "revoked"):
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    for key in found:
        table.add_row(Text(key.name), key.key_id, _when(key.created_at), _when(key.revoked_at) if key.revoked_at else "-")
    _print(table)


@keys_app.command("revoke")
@user_errors
def keys_revoke_command(name: str = typer.Argument(..., help="Name of the key to revoke.")):
    """Revoke an API key: requests carrying it are refused from now on."""
    with open_store() as conn:
        keys.revoke_key(conn, name)
    typer.echo(f"API key {name!r} revoked")


# --- tuneloop feedback ----------------------------------------------------------------------

@feedback_app.command("export")
@user_errors
def feedback_export_command(
    name: str = typer.Argument(..., help="<project>:v<n>, <project>@production, or a project (all its versions)."),
    kind: str = typer.Option(
        ..., "--kind", help="preferences (A/B choices, format pairs), ratings (thumbs, format ratings) or corrections (format chat)."
    ),
    out: Path = typer.Option(..., "--out", help="JSONL file to write; each row names the feedback and requests it came from."),
):
    """Write a model's feedback from the store as a data file that `tuneloop data check` reads with nothing dropped."""
    feedback_export.check_out_path(out)
    with open_store() as conn:
        export = feedback_export.export_feedback(conn, name, kind)
    feedback_export.write_export(export, out)
    typer.echo(_export_summary(export, out))


def _export_summary(export, out: Path) -> str:
    one, many = feedback_export.KINDS[export.kind].row_names
    rows = f"{len(export.rows)} {one if len(export.rows) == 1 else many}"
    merged = "1 repeat merged into an earlier row" if export.merged == 1 else f"{export.merged} repeats merged into earlier rows"
    notes = [merged] if export.merged else []
    if export.left_out:
        listed = "; ".join(str(left) for left in export.left_out[:3])
        more = f"; and {len(export.left_out) - 3} more" if len(export.left_out) > 3 else ""
        notes.append(f"{len(export.left_out)} left out: {listed}{more}")
    details = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"wrote {rows} to {out} from {export.records} {export.kind.removesuffix('s') if export.records == 1 else export.kind} "
        f"of {export.scope}{details}\n"
        f"read it with: tuneloop data check {out} --format {export.format}"
    )


# --- rendering ------------------------------------------------------------------------------

STAGE_STYLES = {"production": "bold green", "candidate": "yellow", "archived": "dim"}


def _print(renderable) -> None:
    from rich.console import Console

    Console().print(renderable)


def _versions_table(found):
    from rich.table import Table
    from rich.text import Text

    table = Table(title="model versions", box=None, pad_edge=False, header_style="bold underline")
    table.add_column("version", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("metric: tuned (base)", min_width=22)
    table.add_column("parent", no_wrap=True)
    table.add_column("created")
    for version in found:
        table.add_row(
            Text(version.id),
            Text(version.stage, style=STAGE_STYLES[version.stage]),
            _metric(version),
            Text(_short_parent(version)),
            _when(version.created_at)[:16],
        )
    return table


def _short_parent(version) -> str:
    """``v2`` for a parent in the same project (the common case), the full id otherwise."""
    if version.parent_id is None:
        return "-"
    project, _, number = version.parent_id.rpartition(":")
    return number if project == version.project else version.parent_id


def _details(version, chain):
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = {
        "version": Text(version.id),
        "stage": Text(version.stage, style=STAGE_STYLES[version.stage]),
        "metric": _metric(version),
        "run": Text(str(version.run_path)),
        "artifact": Text(str(version.artifact_path)),
        "dataset hash": version.dataset_hash or "-",
        "config hash": version.config_hash,
        "created": _when(version.created_at),
        "lineage": Text(" <- ".join(v.id for v in chain)),
    }
    for label, value in rows.items():
        grid.add_row(label, value)
    return grid


def _history_table(events):
    from rich.table import Table
    from rich.text import Text

    table = Table(title="stage history")
    for column in ("when", "action", "change", "reason"):
        table.add_column(column, no_wrap=column != "reason", overflow="fold")
    for event in events:
        change = f"{event.from_stage} -> {event.to_stage}" if event.from_stage else event.to_stage
        table.add_row(_when(event.at), event.action, change, Text(event.reason))
    return table


def _metric(version) -> str:
    primary = version.primary_metric
    if primary is None:
        return "- (not evaluated)"
    name, base, tuned = primary
    return f"{name} {_number(tuned)} ({_number(base)})"


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
