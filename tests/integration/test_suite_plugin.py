"""An evaluation suite added through the registry alone: `evaluate_run` plans and scores it, and
metrics.json, the suite's own file, the report and the terminal summary all show it."""

from __future__ import annotations

import json

import pytest

from helpers import tiny_config
from tuneloop.config import RunConfig
from tuneloop.evaluate.suite import ReportTable, Suite
from tuneloop.evaluate.suites import SUITES
from tuneloop.evaluate.table_cells import comparison_cells


def reply_words(plan: dict, model, tokenizer, scoring) -> dict:
    """Mean words per answer to the test rows: the predictions the main table already made."""
    plan["scored"].append(scoring.which)
    return {"reply_words": sum(len(p.split()) for p in scoring.predictions) / len(scoring.predictions)}


REPLY_LENGTH = Suite(
    name="reply_length",
    label="Reply length",
    heading="Reply length: base vs tuned",
    applies=lambda task, config: None,
    plan=lambda run_dir, config, task, test: {"rows": len(test), "scored": []},
    score=reply_words,
    section=lambda plan, base, tuned, config: {"base": base, "tuned": tuned, "rows": plan["rows"], "scored": plan["scored"]},
    report_rows=lambda section, metrics: ReportTable(f"Words per answer on {section['rows']} test rows.", ["metric", "base", "tuned", "delta"],
                                                     comparison_cells(section["base"], section["tuned"])),  # fmt: skip
    files=lambda plan, base, tuned: {"reply_length.jsonl": [{"model": "base", **base}, {"model": "tuned", **tuned}]},
)


def never_scored(*args):
    raise AssertionError("a suite that does not apply is neither planned nor scored")


NEVER = Suite(
    name="never", label="Never", heading="Never applies", applies=lambda task, config: "not measured: a toy reason",
    plan=never_scored, score=never_scored, section=never_scored, report_rows=never_scored,
)  # fmt: skip


@pytest.fixture
def run(tiny_model_dir, toy_chat_file, tmp_path):
    from tuneloop.train.run import train

    raw = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=2).model_dump()
    raw["eval"].update(max_new_tokens=4, few_shot=[], forgetting=False)  # the built-in suites: off, and said so
    return train(RunConfig.model_validate(raw))


def test_a_registered_suite_reaches_metrics_files_report_and_terminal(run, monkeypatch, capsys):
    from tuneloop.evaluate.heldout import evaluate_run
    from tuneloop.evaluate.summary import print_metrics

    monkeypatch.setitem(SUITES, REPLY_LENGTH.name, REPLY_LENGTH)
    monkeypatch.setitem(SUITES, NEVER.name, NEVER)
    metrics = evaluate_run(run)

    section = json.loads((run / "metrics.json").read_text())["reply_length"]
    assert section == metrics["reply_length"] and section["scored"] == ["base", "tuned"]
    assert section["rows"] == metrics["test_examples"] and set(section["tuned"]) == {"reply_words"}
    assert metrics["never"] == {"skipped": "not measured: a toy reason"}
    assert metrics["few_shot"] == {"skipped": "off (eval.few_shot is empty)"}
    assert metrics["forgetting"] == {"skipped": "off (eval.forgetting: false)"}
    lines = [json.loads(line) for line in (run / "reply_length.jsonl").read_text().splitlines()]
    assert [line["model"] for line in lines] == ["base", "tuned"]

    report = (run / "report.md").read_text()
    assert "## Reply length: base vs tuned" in report and f"Words per answer on {section['rows']} test rows." in report
    assert "| reply_words |" in report
    assert "## Never applies" in report and "Never: not measured: a toy reason." in report
    assert "## reply_length" not in report  # a suite's entry is not repeated among the other results
    assert "Reply length: base vs tuned" in (run / "report.html").read_text()

    print_metrics(metrics)
    shown = capsys.readouterr().out
    assert "Reply length: base vs tuned" in shown and "reply_words" in shown  # the report's table, by default
    assert "Never applies" not in shown
