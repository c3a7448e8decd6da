"""What retraining records in the store once the gate has decided (loop/retrain.py's record_decision).

The candidate is registered with production as its parent; passed, it is promoted and the old
production archived; refused, it is archived with the gate's reason and production stays.
"""

from __future__ import annotations

import json

import pytest

from tuneloop.errors import NotFoundError
from tuneloop.loop.gate import Gate
from tuneloop.loop.retrain import record_decision
from tuneloop.store import versions


def checks(new: tuple[float, float], frozen: tuple[float, float]) -> dict:
    """Gate inputs, (production, candidate) each: a new test and the frozen test by accuracy, the general check unchanged."""
    return {
        "new_test": {"metric": "accuracy", "production": new[0], "candidate": new[1], "lower_is_better": False},
        "frozen_test": {"metric": "accuracy", "production": frozen[0], "candidate": frozen[1], "lower_is_better": False},
        "general": {"metric": "qa_accuracy", "production": 0.5, "candidate": 0.5, "lower_is_better": False},
    }


@pytest.fixture
def decide_on(conn, make_run, tmp_path):
    """Register and promote v1, then record the gate's decision on a new run; returns (v1, record)."""
    v1 = versions.register(conn, make_run("v1"))
    versions.promote(conn, v1.id, "first release")

    def decide_on(results: dict) -> tuple[versions.Version, dict]:
        current = versions.production(conn, "support-triage")
        dataset = {"folder": str(tmp_path / "retrain" / "dataset")}
        record = record_decision(conn, current, make_run("candidate"), results, Gate(), dataset, tmp_path / "retrain")
        return v1, record

    return decide_on


def test_a_refused_candidate_is_archived_with_the_gates_reason_and_production_stays(conn, decide_on, tmp_path):
    v1, record = decide_on(checks(new=(0.5, 0.75), frozen=(0.75, 0.5)))  # better on the new data, worse on the old
    assert not record["promoted"] and record["candidate"] == "support-triage:v2"
    assert record["reason"].startswith("gate failed: ") and "frozen_test accuracy: 0.7500 -> 0.5000" in record["reason"]
    candidate = versions.get(conn, "support-triage:v2")
    assert candidate.stage == "archived" and candidate.parent_id == v1.id
    assert [(e.action, e.from_stage, e.to_stage, e.reason) for e in versions.history(conn, candidate.id)][1:] == [
        ("archive", "candidate", "archived", record["reason"])
    ]
    assert versions.production(conn, "support-triage").id == v1.id
    assert [e.action for e in versions.history(conn, v1.id)] == ["register", "promote"]  # untouched
    with pytest.raises(NotFoundError, match="has no candidate version"):
        versions.resolve(conn, "support-triage@candidate")  # a refused candidate is not left waiting
    assert json.loads((tmp_path / "retrain" / "retrain.json").read_text()) == record


def test_a_passing_candidate_is_promoted_and_the_old_production_archived(conn, decide_on, tmp_path):
    v1, record = decide_on(checks(new=(0.5, 0.75), frozen=(0.75, 0.75)))
    assert record["promoted"] and record["production_before"] == v1.id and record["reason"].startswith("gate passed: ")
    candidate = versions.get(conn, "support-triage:v2")
    assert (candidate.stage, candidate.parent_id) == ("production", v1.id)
    assert versions.history(conn, candidate.id)[-1].reason == record["reason"]
    old = versions.get(conn, v1.id)
    assert old.stage == "archived"
    assert versions.history(conn, v1.id)[-1].reason == f"{record['reason']} (replaced by {candidate.id})"
    assert versions.rollback(conn, "support-triage", "drill").production.id == v1.id  # the archived one comes back
    assert json.loads((tmp_path / "retrain" / "retrain.json").read_text())["checks"]["new_test"]["gain"] == 0.25
