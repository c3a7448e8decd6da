"""The hallucination suite on a finished tiny run: in `tuneloop eval` for a qa run, and as
`tuneloop audit hallucination`, with a TruthfulQA-style probe."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, tiny_config, write_jsonl
from tuneloop.config import RunConfig
from tuneloop.train.run import train

CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Quito", "Hanoi", "Dakar", "Riga"]
SECTION_KEYS = {"base", "tuned", "reference", "rows", "quoted_rows", "unanswerable_rows", "grounded_fields", "truthfulqa_file", "truthfulqa_questions", "entailment"}
MEASURES = {"hallucination_rate", "hallucination_rate_quoted_rows", "unsupported_share", "false_abstention_rate", "abstention_rate"}


def office_rows(n: int = 40) -> list[dict]:
    """Questions over a context, in `tuneloop data synth`'s layout; each answer is quoted from its context."""
    return [
        {
            "messages": [
                {"role": "user", "content": f"Context: The office of team {i} is in {CITIES[i % 8]}. It opened in {2000 + i}.\n\nQuestion: Where is the office of team {i}?"},
                {"role": "assistant", "content": CITIES[i % 8]},
            ]
        }
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("hallucination")
    raw = tiny_config(tiny_model_dir, write_jsonl(folder / "offices.jsonl", office_rows()), folder / "run", max_steps=2).model_dump()
    raw["task"] = "qa"
    raw["eval"].update(max_new_tokens=4, few_shot=[], forgetting=False, hallucination_rows=6)
    return train(RunConfig.model_validate(raw))


def test_eval_of_a_qa_run_reports_the_hallucination_section(qa_run):
    result = run_cli("eval", str(qa_run))
    assert result.exit_code == 0, result.output
    section = json.loads((qa_run / "metrics.json").read_text())["hallucination"]
    assert set(section) == SECTION_KEYS and set(section["base"]) == set(section["tuned"]) == MEASURES
    assert section["rows"] == 6 and section["unanswerable_rows"] == 6  # every answer is quoted, every other context lacks it
    assert section["reference"] == {"hallucination_rate": 0.0, "unsupported_share": 0.0}
    checked = [json.loads(line) for line in (qa_run / "hallucination.jsonl").read_text().splitlines()]
    assert [row["kind"] for row in checked] == ["answerable"] * 6 + ["unanswerable"] * 6
    for row in checked[6:]:
        assert row["reference"] not in row["prompt"][-1]["content"] and row["context_from"] != row["source"]
    report = (qa_run / "report.md").read_text()
    assert "Hallucination: answers grounded in their prompt, base vs tuned" in report and "hallucination_rate" in report
    assert "hallucination: 6 grounded rows, 6 unanswerable" in result.output


def test_rescoring_the_saved_answers_gives_the_sections_answer_checks(qa_run):
    """bench/hallucination_rescore.py reads predictions.jsonl: the same numbers as the suite's, no model loaded."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("hallucination_rescore", Path(__file__).parents[2] / "bench" / "hallucination_rescore.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    section = json.loads((qa_run / "metrics.json").read_text())["hallucination"]
    assert section["rows"] == 6  # as `tuneloop eval` above left it (the audit below rewrites it)
    rescored = script.rescore(str(qa_run), None, 6)
    for which in ("base", "tuned"):
        assert {k: v for k, v in rescored[which].items() if k != "abstention_rate"} == {k: v for k, v in section[which].items() if k != "abstention_rate"}
    assert rescored["reference"] == section["reference"] and rescored["quoted_rows"] == section["quoted_rows"]


def test_the_audit_with_a_probe_updates_the_evaluated_run_and_names_a_bad_probe_line(qa_run, tmp_path):
    probe = write_jsonl(tmp_path / "probe.jsonl", [
        {"question": "Is the sky green?", "mc1_targets": {"choices": ["No", "Yes"], "labels": [1, 0]}},
        {"question": "2 + 2?", "mc1_targets": {"4": 1, "5": 0, "22": 0}},
    ])  # fmt: skip
    result = run_cli("audit", "hallucination", str(qa_run), "--truthfulqa", str(probe), "--rows", "3")
    assert result.exit_code == 0, result.output
    section = json.loads((qa_run / "audit.json").read_text())["hallucination"]
    assert section["rows"] == 3 and section["truthfulqa_questions"] == 2
    assert section["tuned"]["truthfulqa_mc1"] in (0.0, 0.5, 1.0)
    assert json.loads((qa_run / "metrics.json").read_text())["hallucination"] == section  # the evaluated run's report follows
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "Q?"}])
    result = run_cli("audit", "hallucination", str(qa_run), "--truthfulqa", str(bad))
    assert result.exit_code == 2 and f"{bad}:1: mc1_targets: missing" in result.output


def test_the_demo_config_checks_the_product_against_the_ticket(tmp_path, tiny_model_dir):
    """The demo's own settings on 40 generated tickets (a tiny model, 2 steps): about 30 s, the tickets' long prompts."""
    from tuneloop.demo.run import demo_config
    from tuneloop.demo.tickets import write_tickets_csv
    from tuneloop.evaluate.heldout import evaluate_run

    config = demo_config(write_tickets_csv(tmp_path / "tickets.csv", n=40, seed=0), tmp_path / "run", seed=0)
    raw = config.model_dump()
    raw["model"]["name"] = str(tiny_model_dir)
    raw["train"].update(max_steps=2, eval_steps=2)
    raw["eval"].update(max_examples=8, max_new_tokens=4, few_shot=[], forgetting=False, hallucination_rows=8)
    metrics = evaluate_run(train(RunConfig.model_validate(raw)))
    section = metrics["hallucination"]
    assert section["grounded_fields"] == ["product"] and section["rows"] == metrics["test_examples"]
    checked = [json.loads(line) for line in (tmp_path / "run" / "hallucination.jsonl").read_text().splitlines()]
    unanswerable = [row for row in checked if row["kind"] == "unanswerable"]
    assert len(unanswerable) == section["unanswerable_rows"] > 0
    for row in unanswerable:  # the ticket with its product's name cut out
        product = json.loads(row["reference"])["product"]
        assert row["context_from"] == "removed" and product.lower() not in row["prompt"][-1]["content"].lower()
    assert "Hallucination: answers grounded in their prompt" in (tmp_path / "run" / "report.md").read_text()
