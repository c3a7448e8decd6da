"""The request log and feedback on it: validation, and the queries the monitor and retraining read."""

from __future__ import annotations

import pytest

from tuneloop.errors import NotFoundError, StoreError
from tuneloop.store import feedback, requests, versions


@pytest.fixture
def version(conn, make_run):
    return versions.register(conn, make_run("r1"))


def log(conn, version_id=None, prompt="Where is my invoice?", at=None, **fields):
    return requests.log_request(
        conn, model=version_id or "base", prompt=prompt, response=fields.pop("response", "answer"),
        latency_ms=12.5, version_id=version_id, at=at, **fields,
    )


def test_log_and_read_back(conn, version):
    request_id = log(conn, version.id, prompt_tokens=5, completion_tokens=3, api_key="ci")
    logged = requests.get_request(conn, request_id)
    assert request_id.startswith("req_")
    assert (logged.project, logged.version_id, logged.model) == ("support-triage", version.id, version.id)
    assert (logged.latency_ms, logged.prompt_tokens, logged.completion_tokens, logged.api_key) == (12.5, 5, 3, "ci")


def test_recent_filters_and_orders_newest_first(conn, version):
    old = log(conn, version.id, at=100.0)
    new = log(conn, version.id, at=200.0)
    base = log(conn, at=300.0)
    assert [r.id for r in requests.recent(conn)] == [base, new, old]
    assert [r.id for r in requests.recent(conn, version_id=version.id)] == [new, old]
    assert [r.id for r in requests.recent(conn, project="support-triage", since=150.0)] == [new]
    assert [r.id for r in requests.recent(conn, limit=1)] == [base]


def test_a_request_for_an_unknown_version_is_refused(conn):
    with pytest.raises(NotFoundError, match="unknown model version 'ghost:v1'"):
        log(conn, "ghost:v1")


def test_feedback_on_an_unknown_request_is_refused(conn):
    for record in (
        lambda: feedback.record_rating(conn, "req_nope", "up"),
        lambda: feedback.record_correction(conn, "req_nope", "better"),
        lambda: feedback.record_preference(conn, "req_nope", log(conn)),
    ):
        with pytest.raises(NotFoundError, match="unknown request id 'req_nope'"):
            record()


def test_feedback_values_are_validated(conn):
    a, b = log(conn), log(conn)
    with pytest.raises(StoreError, match="rating must be 'up' or 'down'"):
        feedback.record_rating(conn, a, "meh")
    with pytest.raises(StoreError, match="needs the corrected answer"):
        feedback.record_correction(conn, a, " ")
    with pytest.raises(StoreError, match="two different requests"):
        feedback.record_preference(conn, a, a)
    with pytest.raises(StoreError, match="same prompt"):
        feedback.record_preference(conn, a, log(conn, prompt="something else"))
    assert feedback.record_preference(conn, a, b) > 0


def test_rating_counts_per_version_in_a_window(conn, version):
    answers = [log(conn, version.id, at=100.0 + i) for i in range(4)]
    base_answer = log(conn, at=101.0)
    feedback.record_rating(conn, answers[0], "down")
    feedback.record_rating(conn, answers[1], "down")
    feedback.record_rating(conn, answers[1], "up")  # changed their mind: the latest rating counts
    feedback.record_rating(conn, answers[2], "down")
    feedback.record_rating(conn, base_answer, "up")
    counts = {c.version_id: c for c in feedback.rating_counts(conn)}
    assert (counts[version.id].requests, counts[version.id].up, counts[version.id].down) == (4, 1, 2)
    assert counts[version.id].negative_rate == pytest.approx(2 / 3)
    assert (counts[None].up, counts[None].down) == (1, 0)
    window = {c.version_id: c for c in feedback.rating_counts(conn, since=101.5, until=103.0)}
    assert (window[version.id].requests, window[version.id].down) == (1, 1)  # answers[2] only
    quiet = feedback.rating_counts(conn, project="support-triage", since=103.0)
    assert [(c.requests, c.negative_rate) for c in quiet] == [(1, None)]


def test_corrections_and_preferences_for_retraining(conn, version):
    wrong = log(conn, version.id, response="billing")
    feedback.record_correction(conn, wrong, "account", comment="password reset")
    chosen, rejected = log(conn, version.id, response="good"), log(conn, response="bad")
    feedback.record_preference(conn, chosen, rejected)
    [correction] = feedback.corrections(conn, project="support-triage")
    assert (correction.prompt, correction.response, correction.correction) == ("Where is my invoice?", "billing", "account")
    [pair] = feedback.preferences(conn)
    assert (pair.prompt, pair.chosen, pair.rejected) == ("Where is my invoice?", "good", "bad")
    assert (pair.chosen_version, pair.rejected_version) == (version.id, None)
    assert feedback.corrections(conn, since=correction.created_at + 3600) == []
