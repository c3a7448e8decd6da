"""`tuneloop eval` writes the Trust entry and MODEL_CARD.md from the run's own files; an audit refreshes both."""

from __future__ import annotations

import json

import pytest

from helpers import tiny_config
from tuneloop.config import RunConfig


@pytest.fixture
def evaluated(tiny_model_dir, toy_chat_file, tmp_path):
    from tuneloop.evaluate.heldout import evaluate_run
    from tuneloop.train.run import train

    raw = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", max_steps=2).model_dump()
    raw["eval"].update(max_new_tokens=4, few_shot=[], forgetting_prompts=2, forgetting_max_new_tokens=4)
    run = train(RunConfig.model_validate(raw))
    return run, evaluate_run(run)


def test_eval_writes_the_trust_entry_and_a_model_card(evaluated):
    run, metrics = evaluated
    trust = metrics["trust"]
    assert trust["measures"]["forgetting"]["qa_accuracy"]["base"] == metrics["forgetting"]["base"]["qa_accuracy"]
    assert trust["personal_data"] == {"scrubbed": False} and trust["differential_privacy"] is None
    assert json.loads((run / "metrics.json").read_text())["trust"] == trust
    report = (run / "report.md").read_text()
    assert "## Trust: personal data, privacy, bias, hallucination and forgetting" in report
    card = (run / "MODEL_CARD.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card and "- tuneloop\n- sft\n- lora\n" in card
    for heading in ("## Model details", "## Intended use and limits", "## Training data", "## Training procedure", "## Evaluation", "## Trust"):
        assert heading in card
    assert "Personal data: not scrubbed" in card and "Differential privacy: none" in card
    primary = metrics["primary"]
    assert f"| {primary} (primary) | {metrics['base'][primary]:.3f} | {metrics['tuned'][primary]:.3f} |" in card
