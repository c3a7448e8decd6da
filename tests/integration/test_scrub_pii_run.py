"""A run with data.scrub_pii on a tiny model: the run folder's copy is scrubbed, the user's file is not,
data.json and the evaluation report (its trust entry) carry the counts."""

from __future__ import annotations

import json

from helpers import tiny_config, write_jsonl
from tuneloop.evaluate.heldout import evaluate_run
from tuneloop.train.run import train


def test_a_scrubbed_run_trains_on_placeholders_and_reports_the_counts(tiny_model_dir, tmp_path):
    fruits = ["apple", "lime", "plum", "pear"]
    rows = [{"messages": [{"role": "user", "content": f"Ticket {i} from user{i}@acme.com: colour of the {fruits[i % 4]}?"},
                          {"role": "assistant", "content": f"Noted, user{i}@acme.com: green."}]} for i in range(30)]  # fmt: skip
    data = write_jsonl(tmp_path / "tickets.jsonl", rows)
    before = data.read_bytes()
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", max_steps=2)
    config = config.model_copy(update={
        "data": config.data.model_copy(update={"scrub_pii": True}),
        "eval": config.eval.model_copy(update={"few_shot": [], "forgetting": False, "max_new_tokens": 4}),
    })  # fmt: skip; no suites: only the report's data section is under test
    out = train(config)
    assert data.read_bytes() == before
    manifest = json.loads((out / "data.json").read_text())
    # 30 rows, one address each, named in the question and in the answer
    assert manifest["rows_kept"] == 30 and manifest["pii"]["placeholders"]["EMAIL"] == 60 and manifest["pii"]["rows_with_pii"] == 30
    split_text = "".join((out / "splits" / f"{name}.jsonl").read_text() for name in ("train", "val", "test"))
    assert "@acme.com" not in split_text and split_text.count("<EMAIL_1>") == 60
    personal_data = evaluate_run(out)["trust"]["personal_data"]  # the report's and the model card's source
    assert personal_data["scrubbed"] and personal_data["placeholders"]["EMAIL"] == 60 and personal_data["rows_with_pii"] == 30
    assert "(data.scrub_pii): EMAIL 60; 30 rows had some" in (out / "report.md").read_text()
