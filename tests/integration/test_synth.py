"""``tuneloop data synth`` end to end with a real (tiny, random) causal LM.

The tiny model writes garbage, so this checks the mechanics: the model loads through the
project's loader, every request is generated (a retry round included), and the command stops
with the "no rows" error, writing nothing. Rows with their provenance, loadable by the data
layer, are checked through the CLI with the rules generator below and with a stand-in model in
tests/unit/data/test_synth.py. Question quality is measured by ``bench/synth_docs.py`` on the
real built-in model.
"""

from __future__ import annotations

import re
from pathlib import Path

from helpers import run_cli

DOC = """# Acme support policy

## Response times

Urgent tickets get a first response within 30 minutes. Normal tickets are answered within 2 business days.

## Contacts

- Support: help@acme.example
- Escalations: Dana Whitfield
"""


def write_docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "support.md").write_text(DOC, encoding="utf-8")
    (folder / "prices.csv").write_text("product,plan,price\nVault,Team,$8\nVault,Business,$14\n", encoding="utf-8")
    return folder


def test_synth_with_a_real_model_generates_every_request_then_says_no_rows(tmp_path, tiny_model_dir):
    # The tiny model is seeded and decodes greedily: its replies never parse as a question, on
    # every run, so this outcome is the only one a test with it can check.
    docs = write_docs(tmp_path / "docs")
    out = tmp_path / "synth.jsonl"
    result = run_cli("data", "synth", str(docs), "--out", str(out), "--model", str(tiny_model_dir), "--max-new-tokens", "6", "--min-support", "0")
    assert result.exit_code == 2, result.output
    # Progress lines, one a batch: "<model>: writing questions: done/total", then the retry round's.
    first = re.findall(r"writing questions: (\d+)/(\d+)$", result.output, re.MULTILINE)
    retry = re.findall(r"writing questions \(attempt 2 for (\d+) facts\): (\d+)/(\d+)$", result.output, re.MULTILINE)
    assert first and retry, result.output
    facts = int(first[-1][1])
    assert facts > 0 and {*first[-1], *retry[-1]} == {str(facts)}  # every fact asked twice, both rounds finished
    assert f"no rows survived the filters ({2 * facts} candidates: no_question {2 * facts})" in result.output
    assert not out.exists() and not (tmp_path / "synth.manifest.json").exists()


def test_synth_rules_then_train_reads_the_dataset(tmp_path, tiny_model_dir):
    """The model-free generator's rows go straight into the project's data layer and trainer."""
    docs = write_docs(tmp_path / "docs")
    out = tmp_path / "synth.jsonl"
    result = run_cli("data", "synth", str(docs), "--out", str(out), "--generator", "rules")
    assert result.exit_code == 0, result.output
    assert "rows from" in result.output and "manifest:" in result.output
    run = tmp_path / "run"
    train = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(out), "--format", "prompt_completion", "--task", "qa",
        "--out", str(run), "--max-steps", "1", "--tokens-per-batch", "256", "--pack-length", "256", "--few-shot", "",
        "--no-forgetting", "--val-fraction", "0.2", "--test-fraction", "0.2",
    )  # fmt: skip
    assert train.exit_code == 0, train.output
    assert (run / "splits" / "test.jsonl").is_file()


def test_synth_bad_input_names_the_file_and_writes_nothing(tmp_path):
    out = tmp_path / "synth.jsonl"
    missing = run_cli("data", "synth", str(tmp_path / "nope.md"), "--out", str(out))
    assert missing.exit_code == 2 and "document not found" in missing.output and "nope.md" in missing.output
    (tmp_path / "empty.txt").write_text("\n\n")
    empty = run_cli("data", "synth", str(tmp_path / "empty.txt"), "--out", str(out))
    assert empty.exit_code == 2 and "empty.txt: the document is empty" in empty.output
    (tmp_path / "deck.pptx").write_text("x")
    unsupported = run_cli("data", "synth", str(tmp_path / "deck.pptx"), "--out", str(out))
    assert unsupported.exit_code == 2 and "deck.pptx: unsupported document type" in unsupported.output
    assert not out.exists()
