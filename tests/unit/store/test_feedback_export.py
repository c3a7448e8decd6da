"""`tuneloop feedback export`: the store's preferences, ratings and corrections of a model as data files
that `tuneloop data check` reads back with nothing dropped."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli
from tuneloop.config import DataConfig
from tuneloop.data.validate import load_examples
from tuneloop.store import feedback, feedback_export, requests, versions

SYSTEM = {"role": "system", "content": "Be brief."}


def chat_prompt(text: str) -> str:
    """A chat request's prompt as the server logs it: the JSON of the messages the client sent."""
    return json.dumps([SYSTEM, {"role": "user", "content": text}])


def log(conn, version_id, prompt, response, at=100.0, project=None):
    return requests.log_request(
        conn, model=version_id or "base", prompt=prompt, response=response, latency_ms=5.0, version_id=version_id, project=project, at=at
    )


@pytest.fixture
def served(conn, make_run):
    """Two versions of support-triage (v2 in production) and the feedback their answers got, the messy
    cases included; returns the request ids by name."""
    versions.register(conn, make_run("r1"))
    versions.register(conn, make_run("r2"))
    versions.promote(conn, "support-triage:v2", "better")
    ids = {
        "v1_invoice": log(conn, "support-triage:v1", chat_prompt("Where is my invoice?"), "No idea."),
        "v2_invoice": log(conn, "support-triage:v2", chat_prompt("Where is my invoice?"), "Under Billing > Invoices."),
        "v1_reset": log(conn, "support-triage:v1", "Reset my password", "Use the reset link.", at=200.0),
        "base_reset": log(conn, None, "Reset my password", "Use the reset link.", project="support-triage"),
        "v2_refund": log(conn, "support-triage:v2", chat_prompt("Refund please"), '{"category": "billing", "priority": "low"}'),  # JSON text: an answer
        "v2_empty": log(conn, "support-triage:v2", chat_prompt("Hello?"), ""),
    }
    feedback.record_preference(conn, ids["v2_invoice"], ids["v1_invoice"])  # 1: v2 over v1
    feedback.record_preference(conn, ids["v2_invoice"], ids["v1_invoice"])  # 2: the same choice again: merged into 1
    feedback.record_preference(conn, ids["v1_reset"], ids["base_reset"])  # 3: identical answers: left out
    feedback.record_rating(conn, ids["v2_invoice"], "up")  # 4
    feedback.record_rating(conn, ids["v1_invoice"], "up")  # 5: replaced by 6
    feedback.record_rating(conn, ids["v1_invoice"], "down")  # 6
    feedback.record_rating(conn, ids["v2_refund"], "up")  # 7
    feedback.record_rating(conn, ids["v2_empty"], "down")  # 8: an empty answer: left out
    feedback.record_correction(conn, ids["v1_invoice"], "Under Billing > Invoices, as a PDF.")  # 9
    feedback.record_correction(conn, ids["v1_reset"], "Click 'Forgot password'.")  # 10
    return ids


def export(*args):
    return run_cli("feedback", "export", *map(str, args))


def read_back(path, format):
    """What `tuneloop data check` would read (its examples and dropped rows)."""
    return load_examples(DataConfig(path=[str(path)], format=format))


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("kind", "format", "rows"), [("preferences", "pairs", 1), ("ratings", "ratings", 3), ("corrections", "chat", 2)])
def test_each_kind_reads_back_through_data_check_with_nothing_dropped(store_file, served, tmp_path, kind, format, rows):
    out = tmp_path / f"{kind}.jsonl"
    result = export("support-triage", "--kind", kind, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"read it with: tuneloop data check {out} --format {format}" in result.output
    report = read_back(out, format)
    assert (len(report.examples), report.dropped) == (rows, [])
    checked = run_cli("data", "check", str(out), "--format", format)
    assert checked.exit_code == 0 and f"rows read {rows}, kept {rows}, dropped 0" in checked.output


def test_a_preference_row_keeps_the_conversation_and_names_both_requests(store_file, served, tmp_path):
    out = tmp_path / "prefs.jsonl"
    result = export("support-triage", "--kind", "preferences", "--out", out)
    assert result.output.startswith(
        f"wrote 1 pair to {out} from 3 preferences of project 'support-triage' (1 repeat merged into an earlier row; "
        "1 left out: feedback 3: rejected: identical to chosen (a pair needs two different answers))"
    )
    [row] = rows_of(out)
    assert row["prompt"] == [SYSTEM, {"role": "user", "content": "Where is my invoice?"}]
    assert (row["chosen"], row["rejected"]) == ("Under Billing > Invoices.", "No idea.")
    assert [entry["feedback_id"] for entry in row["feedback"]] == [1, 2]
    entry = row["feedback"][0]
    assert (entry["chosen_request_id"], entry["chosen_version"]) == (served["v2_invoice"], "support-triage:v2")
    assert (entry["rejected_request_id"], entry["rejected_version"]) == (served["v1_invoice"], "support-triage:v1")
    assert entry["chosen_requested_at"] == "1970-01-01T00:01:40+00:00"
    [pair] = read_back(out, "pairs").examples
    assert (pair.messages, pair.prompt) == ((SYSTEM, {"role": "user", "content": "Where is my invoice?"}), "")


def test_ratings_are_the_latest_vote_as_a_boolean_label(conn, served):
    exported = feedback_export.export_feedback(conn, "support-triage", "ratings")
    labels = {(row["feedback"][0]["request_id"], row["label"]) for row in exported.rows}
    assert labels == {(served["v2_invoice"], True), (served["v1_invoice"], False), (served["v2_refund"], True)}
    assert exported.records == 4 and [str(left) for left in exported.left_out] == ["feedback 8: completion: empty"]
    assert all(row["feedback"][0]["version"].startswith("support-triage:v") for row in exported.rows)


def test_corrections_are_the_conversation_answered_as_corrected(conn, served):
    exported = feedback_export.export_feedback(conn, "support-triage:v1", "corrections")
    chat, text = exported.rows
    assert chat["messages"] == [SYSTEM, {"role": "user", "content": "Where is my invoice?"},
                                {"role": "assistant", "content": "Under Billing > Invoices, as a PDF."}]  # fmt: skip
    assert text["messages"] == [{"role": "user", "content": "Reset my password"}, {"role": "assistant", "content": "Click 'Forgot password'."}]
    assert (chat["feedback"][0]["response"], chat["feedback"][0]["request_id"]) == ("No idea.", served["v1_invoice"])


def test_a_version_gets_its_own_answers_and_the_comparisons_it_took_part_in(conn, served):
    def feedback_ids(name, kind):
        return [entry["feedback_id"] for row in feedback_export.export_feedback(conn, name, kind).rows for entry in row["feedback"]]

    assert feedback_ids("support-triage:v1", "ratings") == [6]
    assert feedback_ids("support-triage:v2", "ratings") == [4, 7]
    assert feedback_ids("support-triage:v1", "preferences") == [1, 2]  # it lost the comparison; still its feedback
    assert feedback_ids("support-triage@production", "preferences") == [1, 2]
    assert feedback_ids("support-triage", "corrections") == [9, 10]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("support-triage:v9", "--kind", "ratings"), "unknown model version 'support-triage:v9'"),
        (("nope", "--kind", "ratings"), "unknown project 'nope': no version of it is registered"),
        (("support-triage@staging", "--kind", "ratings"), "unknown stage alias @staging"),
        (("support-triage", "--kind", "thumbs"), "unknown feedback kind 'thumbs': choose one of preferences, ratings, corrections"),
        (("support-triage@production", "--kind", "corrections"), "nothing to export: the store holds no corrections for support-triage:v2"),
    ],
)
def test_nothing_is_written_and_exit_2_when_there_is_nothing_to_export(store_file, served, tmp_path, args, message):
    out = tmp_path / "out.jsonl"
    result = export(*args, "--out", out)
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output, result.output
    assert not out.exists()


def test_a_store_with_only_unusable_feedback_says_why(store_file, conn, make_run, tmp_path):
    versions.register(conn, make_run("r1"))
    same = [log(conn, "support-triage:v1", "Hi", "Hello") for _ in range(2)]
    feedback.record_preference(conn, *same)
    result = export("support-triage", "--kind", "preferences", "--out", tmp_path / "p.jsonl")
    assert result.exit_code == 2
    assert "none of the 1 preferences for project 'support-triage' makes a usable pairs row (feedback 1: rejected: identical to chosen" in result.output
    assert not (tmp_path / "p.jsonl").exists()


def test_out_must_be_a_jsonl_file(store_file, served, tmp_path):
    result = export("support-triage", "--kind", "ratings", "--out", tmp_path / "ratings.csv")
    assert result.exit_code == 2 and "name a .jsonl file" in result.output and not (tmp_path / "ratings.csv").exists()


def test_the_summary_counts_rows_and_records(store_file, served, tmp_path):
    out = tmp_path / "r.jsonl"
    result = export("support-triage:v2", "--kind", "ratings", "--out", out)
    assert result.exit_code == 0 and result.output.startswith(f"wrote 2 ratings to {out} from 3 ratings of support-triage:v2 (1 left out: ")
