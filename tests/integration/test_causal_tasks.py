"""Continued pre-training and generative QA end to end on the tiny Llama."""

from __future__ import annotations

import json

from helpers import run_cli, write_jsonl
from tuneloop.objectives import get_task
from tuneloop.text.tokenize import IGNORE, TokenizedExample

TINY_TRAIN = ("--r", "4", "--lr", "5e-3", "--tokens-per-batch", "256", "--pack-length", "128",
              "--early-stopping-patience", "0", "--val-fraction", "0.2", "--test-fraction", "0.2")  # fmt: skip


def test_cpt_cuts_long_documents_into_pieces_instead_of_dropping_them():
    cpt = get_task("cpt")
    document = TokenizedExample(list(range(10)), list(range(10)))
    pieces = cpt.pieces(document, max_length=4)
    assert [p.input_ids for p in pieces] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(p.labels == p.input_ids for p in pieces)  # every token is a target
    assert cpt.pieces(TokenizedExample(list(range(9)), list(range(9))), max_length=4)[-1].input_ids == [4, 5, 6, 7]


def test_cpt_trains_on_raw_text_and_lowers_heldout_perplexity(tiny_model_dir, tmp_path):
    paragraphs = [f"Billing {i}: refunds and invoices are handled by the billing team within {i % 5 + 1} days." for i in range(40)]
    data = tmp_path / "handbook.txt"
    data.write_text("\n\n".join(paragraphs) + "\n")
    out = tmp_path / "run"
    result = run_cli("train", "--task", "cpt", "--model", str(tiny_model_dir), "--data", str(data), "--format", "text",
                     "--max-length", "16", "--max-steps", "25", "--out", str(out), *TINY_TRAIN)  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run_cli("eval", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary"] == "perplexity"
    assert metrics["tuned"]["perplexity"] < 0.7 * metrics["base"]["perplexity"]
    assert json.loads((out / "data.json").read_text())["rows_dropped"] == 0  # longer than 16 tokens, but kept


def test_qa_is_scored_squad_style(tiny_model_dir, tmp_path):
    rows = [
        {"context": f"Vault keeps deleted files for {d} days.", "question": f"Ticket {i}: how long does Vault keep files?", "answer": f"{d} days"}
        for i, d in enumerate([7, 14, 30, 60] * 10)
    ]
    data = write_jsonl(tmp_path / "qa.jsonl", rows)
    out = tmp_path / "run"
    result = run_cli("train", "--task", "qa", "--model", str(tiny_model_dir), "--data", str(data), "--format", "prompt_completion",
                     "--prompt-template", "Context: {context}\nQuestion: {question}", "--columns", "completion=answer",
                     "--max-steps", "5", "--max-new-tokens", "4", "--out", str(out), *TINY_TRAIN)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert run_cli("eval", str(out)).exit_code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary"] == "f1" and metrics["task"] == "qa"
    assert set(metrics["tuned"]) >= {"exact_match", "f1", "loss"}


def test_squad_scores_normalise_answers():
    from tuneloop.text.metrics import squad_scores

    scores = squad_scores(["The 30 days.", "fourteen"], ["30 days", "14 days"])
    assert scores == {"exact_match": 0.5, "f1": 0.5}
