"""What an alignment round reads and refuses before it trains anything (loop/align.py, store/rounds.py)."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from tuneloop.loop.align import AlignSettings, choose_objective, rating_pairs, read_feedback, split_by_prompt, win_rate
from tuneloop.store import rounds, versions
from tuneloop.store.feedback import record_preference, record_rating
from tuneloop.store.requests import log_request


def answer(conn, prompt: str, response: str, version: str | None = "support-triage:v1") -> str:
    return log_request(conn, model=version or "base", prompt=json.dumps([{"role": "user", "content": prompt}]), response=response,
                       latency_ms=1.0, version_id=version, project="support-triage")  # fmt: skip


def prefer(conn, n: int, start: int = 0, version: str | None = "support-triage:v1") -> list[int]:
    """``n`` A/B choices, each on its own prompt: the polite answer over the rude one."""
    return [
        record_preference(conn, answer(conn, f"ticket {i}", "Thanks, on it.", version), answer(conn, f"ticket {i}", "No.", version))
        for i in range(start, start + n)
    ]


@pytest.fixture
def production(conn, make_run):
    v1 = versions.register(conn, make_run("v1"))
    versions.promote(conn, v1.id, "first release")
    return versions.get(conn, v1.id)


def test_too_few_preferences_exit_2_with_the_counts_and_leave_nothing(conn, production, tmp_path, store_file):
    prefer(conn, 5)
    out = tmp_path / "round"
    result = run_cli("align", "support-triage", "--out", str(out))
    assert result.exit_code == 2
    assert "align support-triage: 5 usable preference pairs since the production version was registered; a round needs at least 16" in result.output
    assert "nothing was trained or promoted" in result.output
    assert not out.exists()
    assert [v.id for v in versions.list_versions(conn)] == ["support-triage:v1"]
    assert versions.production(conn, "support-triage").id == "support-triage:v1"
    assert rounds.rounds(conn, "support-triage") == []


def test_the_minimum_is_the_callers(conn, production, tmp_path, store_file):
    prefer(conn, 3)
    result = run_cli("align", "support-triage", "--out", str(tmp_path / "r"), "--min-preferences", "4")
    assert result.exit_code == 2 and "3 usable preference pairs" in result.output and "at least 4" in result.output
    too_low = run_cli("align", "support-triage", "--out", str(tmp_path / "r"), "--min-preferences", "2")
    assert too_low.exit_code == 2 and "--min-preferences 2: a round needs at least 4" in too_low.output


def test_an_unknown_project_and_a_project_without_production_are_refused(conn, make_run, tmp_path, store_file):
    result = run_cli("align", "nope", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "unknown project 'nope'" in result.output
    versions.register(conn, make_run("v1"))
    result = run_cli("align", "support-triage", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "project 'support-triage' has no production version to align" in result.output
    assert not (tmp_path / "r").exists()


def test_a_production_method_that_cannot_be_switched_off_is_refused(conn, make_run, tmp_path, store_file):
    run = make_run("full", **{"method.name": "full"})
    (run / "model").mkdir()
    versions.promote(conn, versions.register(conn, run).id, "first release")
    prefer(conn, 20)
    result = run_cli("align", "support-triage", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "support-triage:v1 uses method 'full', which has none to switch off (align a version trained with one of lora" in result.output
    assert not (tmp_path / "r").exists()


def test_an_unknown_objective_is_refused(conn, production, tmp_path, store_file):
    result = run_cli("align", "support-triage", "--out", str(tmp_path / "r"), "--objective", "ppo")
    assert result.exit_code == 2 and "--objective 'ppo': choose one of auto, dpo, kto" in result.output


def test_a_round_reads_only_feedback_newer_than_the_last_round(conn, production, make_run):
    first = read_feedback(conn, "support-triage", production.created_at)
    assert first.window.after == 0 and first.window.since == production.created_at
    prefer(conn, 6)
    first = read_feedback(conn, "support-triage", production.created_at)
    assert len(first.pairs.rows) == 6
    candidate = versions.register(conn, make_run("v2"), parent=production.id)
    rounds.record_round(
        conn, project="support-triage", production_id=production.id, candidate_id=candidate.id, objective="dpo",
        feedback_ids=sorted(first.ids), feedback_through=first.window.through, scores={}, promoted=False, reason="gate failed: test",
    )  # fmt: skip
    assert read_feedback(conn, "support-triage", production.created_at).pairs.rows == []
    new_ids = prefer(conn, 2, start=100)
    later = read_feedback(conn, "support-triage", production.created_at)
    assert later.window.after == first.window.through and later.window.describe() == f"since align round feedback #{first.window.through}"
    assert sorted(s["feedback_id"] for row in later.pairs.rows for s in row["feedback"]) == new_ids
    stored = rounds.last_round(conn, "support-triage")
    assert stored.feedback_ids == sorted(first.ids) and stored.candidate_id == "support-triage:v2" and not stored.promoted


def test_feedback_before_production_was_registered_is_not_read(conn, make_run):
    prefer(conn, 3, version=None)  # answered by the base, before v1 existed
    v1 = versions.register(conn, make_run("v1"))
    versions.promote(conn, v1.id, "first release")
    prefer(conn, 2, start=50)
    assert len(read_feedback(conn, "support-triage", versions.get(conn, v1.id).created_at).pairs.rows) == 2


def test_ratings_alone_choose_kto_and_pair_good_with_bad_answers(conn, production):
    good, bad = answer(conn, "ticket 1", "Thanks, on it."), answer(conn, "ticket 1", "No.")
    record_rating(conn, good, "up"), record_rating(conn, bad, "down")
    feedback = read_feedback(conn, "support-triage", production.created_at)
    assert choose_objective("auto", feedback) == "kto" and choose_objective("dpo", feedback) == "dpo"
    pairs = rating_pairs(feedback.ratings.rows)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("Thanks, on it.", "No.")]
    result = run_cli("align", "support-triage", "--out", "unused-folder")
    assert result.exit_code == 2 and "2 usable ratings since the production version was registered" in result.output


def test_the_split_keeps_every_prompt_on_one_side():
    rows = {
        "pairs": [{"prompt": f"ticket {i % 7}", "chosen": f"yes {i}", "rejected": f"no {i}"} for i in range(28)],
        "ratings": [{"prompt": f"ticket {i % 7}", "completion": f"ok {i}", "label": i % 2 == 0} for i in range(14)],
    }
    train, heldout = split_by_prompt(rows, "Be brief.", AlignSettings())
    prompts = lambda split: {r["prompt"] for kind in split.values() for r in kind}  # noqa: E731
    assert prompts(train) and prompts(heldout) and not prompts(train) & prompts(heldout)
    assert sum(map(len, train.values())) + sum(map(len, heldout.values())) == 42


def test_win_rate_counts_ties_half():
    assert win_rate([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 4.0]) == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_retrain_align_is_skipped_below_the_minimum_and_otherwise_reads_since_the_production_it_started_from(conn, production, make_run, tmp_path, monkeypatch):
    from tuneloop.loop import align as align_module
    from tuneloop.loop.gate import Gate

    prefer(conn, 3)
    record = {"production_before": production.id}
    assert align_module.align_after_retrain(conn, record, tmp_path / "retrain", Gate(), AlignSettings(min_preferences=4)) == {
        "skipped": "3 preference pair(s) waiting; align needs at least 4 (--min-preferences)"
    }
    assert not (tmp_path / "retrain" / "align").exists()
    # retrain promoted v2 just now: the round must still read the feedback given to v1, so it starts from v1's registration.
    versions.promote(conn, versions.register(conn, make_run("v2"), parent=production.id).id, "retrained")
    prefer(conn, 1, start=10)
    calls = []
    monkeypatch.setattr(align_module, "align", lambda conn, project, out, gate, settings, since: calls.append((project, out, since)) or {"promoted": True})
    assert align_module.align_after_retrain(conn, record, tmp_path / "retrain", Gate(), AlignSettings(min_preferences=4)) == {"promoted": True}
    assert calls == [("support-triage", tmp_path / "retrain" / "align", production.created_at)]
