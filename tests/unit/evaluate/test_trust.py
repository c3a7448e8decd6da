"""The Trust entry: gathered from data.json, train.json and the trust suites' sections, never scored again."""

from __future__ import annotations

from tuneloop.evaluate.trust import TRUST_SUITES, trust_facts, trust_rows, trust_section

FORGETTING = {
    "base": {"answer_rouge_l": 1.0, "answer_token_f1": 1.0, "qa_accuracy": 0.5, "general_perplexity": 10.0, "qa_forgotten": 0},
    "tuned": {"answer_rouge_l": 0.5, "answer_token_f1": 0.5, "qa_accuracy": 0.25, "general_perplexity": 12.0, "qa_forgotten": 2},
    "suite": {"prompts": 2, "max_new_tokens": 8, "questions": 4, "paragraphs": 2},
}


def test_measures_come_from_each_suites_gate_measures_and_the_rest_says_why():
    section = trust_section({"forgetting": FORGETTING}, {}, {})
    assert section["measures"]["forgetting"]["qa_accuracy"] == {"base": 0.5, "tuned": 0.25, "lower_is_better": False}
    assert trust_section({"forgetting": {"skipped": "the task is reward"}}, {}, {})["not_measured"]["forgetting"] == "the task is reward"
    assert set(section["measures"]) | set(section["not_measured"]) == set(TRUST_SUITES)
    assert section["personal_data"] == {"scrubbed": False} and section["differential_privacy"] is None and section["canaries"] is None


def test_facts_say_how_personal_data_and_privacy_were_handled():
    manifest = {
        "pii": {"placeholders": {"EMAIL": 3, "PHONE": 0, "PERSON": 2}, "rows_with_pii": 4, "rows_where": []},
        "canaries": {"repeats": 10, "canaries": [{"holder": "A", "secret": "1"}, {"holder": "B", "secret": "2"}]},
    }
    section = trust_section({"forgetting": FORGETTING}, manifest, {"dp": {"epsilon": 7.5, "delta": 1e-5, "steps": 3}})
    assert section["differential_privacy"] == {"epsilon": 7.5, "delta": 1e-5}
    assert section["canaries"] == {"count": 2, "repeats": 10}  # the secrets stay in data.json
    facts = " ".join(trust_facts(section))
    assert "typed placeholders (data.scrub_pii): EMAIL 3, PERSON 2; 4 rows had some" in facts
    assert "epsilon 7.5, delta 1e-05" in facts and "2 secrets, each in 10 training rows" in facts
    note, header, rows = trust_rows(section)
    qa = next(row for row in rows if row[1] == "qa_accuracy")
    assert qa[4] == ("-0.250", "num worse") and note.startswith("Personal data in the training data was replaced")
