"""Registering runs as versions, resolving aliases, promotion, rollback, lineage and stage history."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from tuneloop.errors import NotFoundError, StoreError
from tuneloop.store import versions


@pytest.fixture
def three(conn, make_run):
    """v1 <- v2 <- v3 of support-triage, all candidates."""
    v1 = versions.register(conn, make_run("r1"))
    v2 = versions.register(conn, make_run("r2"), parent=v1.id)
    v3 = versions.register(conn, make_run("r3", accuracy=0.95), parent="support-triage@candidate")
    return v1, v2, v3


def test_register_records_the_run(conn, make_run):
    run = make_run("r1", dataset_hash="abc123")
    version = versions.register(conn, run)
    assert version.id == "support-triage:v1" and version.number == 1
    assert version.stage == "candidate" and version.parent_id is None
    assert version.run_path == run.resolve() and version.artifact_path == (run / "adapter").resolve()
    assert version.dataset_hash == "abc123" and len(version.config_hash) == 64
    assert version.primary_metric == ("accuracy", 0.2, 0.9)
    assert [(e.action, e.to_stage) for e in versions.history(conn, version.id)] == [("register", "candidate")]


def test_numbers_count_per_project_and_project_can_be_overridden(conn, make_run):
    assert versions.register(conn, make_run("a")).id == "support-triage:v1"
    assert versions.register(conn, make_run("b"), project="other").id == "other:v1"
    assert versions.register(conn, make_run("c")).id == "support-triage:v2"


def test_config_hash_ignores_the_run_folder_but_not_settings(conn, make_run):
    a, b = versions.register(conn, make_run("a")), versions.register(conn, make_run("b"))
    c = versions.register(conn, make_run("c", **{"train.epochs": 5}))
    assert a.config_hash == b.config_hash != c.config_hash


def test_a_run_without_metrics_registers_unevaluated(conn, make_run):
    version = versions.register(conn, make_run("r", accuracy=None))
    assert version.metrics is None and version.primary_metric is None


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda run: shutil.rmtree(run / "adapter"), "has no adapter/: training did not finish"),
        (lambda run: (run / "config.yaml").unlink(), "not a tuneloop run folder"),
        (lambda run: (run / "data.json").unlink(), "no data.json"),
        (lambda run: (run / "data.json").write_text("{}"), "data.json has no dataset_hash"),
        (lambda run: shutil.rmtree(run), "is not a folder"),
    ],
)
def test_an_unfinished_or_foreign_folder_is_refused(conn, make_run, breakage, message):
    run = make_run("r")
    breakage(run)
    with pytest.raises(StoreError, match=message):
        versions.register(conn, run)
    assert versions.list_versions(conn) == []


def test_a_folder_registers_once(conn, make_run):
    run = make_run("r")
    versions.register(conn, run)
    with pytest.raises(StoreError, match="already registered as support-triage:v1"):
        versions.register(conn, run, project="elsewhere")


def test_bad_project_names_and_unknown_parents_are_refused(conn, make_run):
    with pytest.raises(StoreError, match="invalid project name"):
        versions.register(conn, make_run("a"), project="a@b")
    with pytest.raises(NotFoundError, match="unknown model version 'support-triage:v7'"):
        versions.register(conn, make_run("b"), parent="support-triage:v7")
    assert versions.list_versions(conn) == []


def test_resolve_aliases(conn, three):
    v1, v2, v3 = three
    assert versions.resolve(conn, "support-triage:v2") == v2
    assert versions.resolve(conn, "support-triage@candidate").id == v3.id  # the latest candidate
    with pytest.raises(NotFoundError, match="has no production version"):
        versions.resolve(conn, "support-triage@production")
    versions.promote(conn, v2.id, "first release")
    assert versions.resolve(conn, "support-triage@production").id == v2.id
    for ref, message in [
        ("nope@production", "unknown project 'nope'"),
        ("support-triage@latest", "unknown stage alias @latest"),
        ("support-triage", "names no model version"),
        ("support-triage:v9", "unknown model version"),
    ]:
        with pytest.raises(NotFoundError, match=message):
            versions.resolve(conn, ref)


def test_lineage_walks_the_parents(conn, three):
    v1, v2, v3 = three
    assert [v.id for v in versions.lineage(conn, v3.id)] == [v3.id, v2.id, v1.id]
    assert [v.id for v in versions.lineage(conn, v1.id)] == [v1.id]


def test_promote_archives_the_previous_production_and_records_why(conn, three):
    v1, v2, _ = three
    first = versions.promote(conn, v1.id, "first release")
    assert first.production.stage == "production" and first.archived is None
    second = versions.promote(conn, v2.id, "better accuracy")
    assert (second.production.id, second.production.stage) == (v2.id, "production")
    assert (second.archived.id, second.archived.stage) == (v1.id, "archived")
    events = [(e.action, e.from_stage, e.to_stage, e.reason) for e in versions.history(conn, v1.id)]
    assert events[1:] == [
        ("promote", "candidate", "production", "first release"),
        ("promote", "production", "archived", f"better accuracy (replaced by {v2.id})"),
    ]
    assert [v.stage for v in versions.list_versions(conn)].count("production") == 1


def test_promote_refusals(conn, three):
    v1, v2, _ = three
    versions.promote(conn, v1.id, "first")
    with pytest.raises(StoreError, match="already production"):
        versions.promote(conn, v1.id, "again")
    with pytest.raises(StoreError, match="needs a reason"):
        versions.promote(conn, v2.id, "  ")
    shutil.rmtree(v2.run_path)
    with pytest.raises(StoreError, match=f"cannot promote {v2.id}: its run folder .* is gone"):
        versions.promote(conn, v2.id, "gone")
    assert versions.resolve(conn, "support-triage@production").id == v1.id  # nothing changed


def test_rollback_undoes_promotions_one_at_a_time(conn, three):
    v1, v2, v3 = three
    for version in three:
        versions.promote(conn, version.id, f"release {version.number}")
    back = versions.rollback(conn, "support-triage", "v3 regressed")
    assert (back.production.id, back.archived.id) == (v2.id, v3.id)
    assert versions.rollback(conn, "support-triage", "v2 too").production.id == v1.id
    with pytest.raises(StoreError, match="no earlier production version"):
        versions.rollback(conn, "support-triage", "nothing left")
    assert versions.history(conn, v3.id)[-1].reason == "v3 regressed"
    assert [e.action for e in versions.project_history(conn, "support-triage")].count("rollback") == 4


def test_rollback_after_repromoting_an_old_version(conn, three):
    v1, v2, _ = three
    versions.promote(conn, v1.id, "a")
    versions.promote(conn, v2.id, "b")
    versions.promote(conn, v1.id, "back to v1 by hand")
    assert versions.rollback(conn, "support-triage", "undo").production.id == v2.id


def test_rollback_refusals(conn, three):
    v1, v2, _ = three
    with pytest.raises(StoreError, match="no production version to roll back"):
        versions.rollback(conn, "support-triage", "why")
    versions.promote(conn, v1.id, "a")
    versions.promote(conn, v2.id, "b")
    shutil.rmtree(v1.artifact_path)
    with pytest.raises(StoreError, match=f"cannot roll back to {v1.id}"):
        versions.rollback(conn, "support-triage", "why")
    assert versions.resolve(conn, "support-triage@production").id == v2.id


def test_archive_retires_a_candidate(conn, three):
    _, v2, v3 = three
    versions.archive(conn, v3.id, "failed the gate")
    assert versions.resolve(conn, "support-triage@candidate").id == v2.id
    versions.promote(conn, v2.id, "ok")
    with pytest.raises(StoreError, match="only a candidate can be archived"):
        versions.archive(conn, v2.id, "no")


def test_the_schema_itself_allows_one_production_per_project(conn, three):
    v1, v2, _ = three
    conn.execute("UPDATE versions SET stage = 'production' WHERE id = ?", (v1.id,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE versions SET stage = 'production' WHERE id = ?", (v2.id,))


def test_refuse_keeps_a_candidate_with_the_reason_and_refuses_other_stages(conn, three):
    v1, v2, _ = three
    refused = versions.refuse(conn, v2.id, "trust limits failed: bias")
    assert refused.stage == "candidate"
    assert [(e.action, e.from_stage, e.to_stage, e.reason) for e in versions.history(conn, v2.id)][-1] == (
        "refuse", "candidate", "candidate", "trust limits failed: bias",
    )  # fmt: skip
    versions.promote(conn, v1.id, "first")
    with pytest.raises(StoreError, match="only a candidate can be refused"):
        versions.refuse(conn, v1.id, "too late")
    with pytest.raises(StoreError, match="needs a reason"):
        versions.refuse(conn, v2.id, " ")
