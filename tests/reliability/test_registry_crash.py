"""``models promote``, ``models rollback``, ``retrain`` and ``align`` SIGKILLed while they change the registry:
the store is left as it was before the change or as it is after it, never in between."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from helpers import run_cli
from helpers_align import ALIGN_ARGS, align_scenario
from reliability.test_crash_resume import kill_at

TRAIN = ("--format", "prompt_completion", "--prompt-template", "Subject: {subject}\n\n{body}",
         "--target-columns", "category,priority,product,needs_human", "--system-prompt", "Triage the ticket as JSON.",
         "--r", "4", "--max-steps", "2", "--tokens-per-batch", "1024", "--pack-length", "512",
         "--max-length", "256", "--early-stopping-patience", "0")  # fmt: skip


def registry(store) -> tuple[list, ...]:
    """Every version row, stage event and align round, in order: the whole state a change may touch."""
    with sqlite3.connect(store) as conn:
        return tuple(list(conn.execute(f"SELECT * FROM {table} ORDER BY rowid")) for table in ("versions", "stage_events", "align_rounds"))


@pytest.fixture
def store_with_two_versions(tiny_model_dir, tmp_path, monkeypatch):
    """triage:v1 in production, triage:v2 a candidate (two tiny runs on the demo's tickets)."""
    from tuneloop.demo.tickets import write_tickets_csv

    store = tmp_path / "store.sqlite3"
    monkeypatch.setenv("TUNELOOP_STORE", str(store))
    tickets = write_tickets_csv(tmp_path / "tickets.csv", n=60, seed=0)
    for name in ("v1", "v2"):
        result = run_cli("train", "--project", "triage", "--model", str(tiny_model_dir), "--data", str(tickets), *TRAIN, "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert run_cli("models", "register", str(tmp_path / name)).exit_code == 0
    assert run_cli("models", "promote", "triage:v1", "--reason", "first release").exit_code == 0
    return store, tickets


def test_promote_and_rollback_killed_mid_change_leave_the_registry_as_before(store_with_two_versions, tmp_path):
    store, _ = store_with_two_versions
    before = registry(store)
    kill_at("store-event@1", ["models", "promote", "triage:v2", "--reason", "killed"])  # v1 archived, v2 not yet production
    assert registry(store) == before
    assert run_cli("models", "promote", "triage:v2", "--reason", "second release").exit_code == 0
    promoted = registry(store)
    kill_at("store-event@1", ["models", "rollback", "triage", "--reason", "killed"])
    assert registry(store) == promoted
    assert run_cli("models", "rollback", "triage", "--reason", "drill").exit_code == 0
    assert registry(store) != promoted


@pytest.mark.timeout(600)
def test_retrain_killed_in_its_decision_changes_nothing(store_with_two_versions, tmp_path):
    store, tickets = store_with_two_versions
    new_data = tmp_path / "new.csv"
    with tickets.open() as source, new_data.open("w", newline="") as target:
        rows = list(csv.DictReader(source))[:40]
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    retrain = ["retrain", "triage", "--data", str(new_data), "--max-steps", "2", "--gate-metric", "loss", "--tolerance", "10"]
    before = registry(store)
    # the candidate registered (event 1) and the gate's stage change begun (event 2), not committed
    kill_at("store-event@2", [*retrain, "--out", str(tmp_path / "killed")])
    assert registry(store) == before
    assert not (tmp_path / "killed" / "retrain.json").exists()


@pytest.mark.timeout(600)
def test_align_killed_in_its_decision_records_no_candidate_and_no_round(tiny_model_dir, tmp_path):
    store = align_scenario(tiny_model_dir, tmp_path)
    before = registry(store)
    # the candidate registered (event 1) and the gate's stage change begun (event 2); the round not yet recorded
    kill_at("store-event@2", ["align", "triage", "--out", str(tmp_path / "killed"), "--store", str(store), *ALIGN_ARGS])
    assert registry(store) == before
    assert not (tmp_path / "killed" / "align.json").exists()
