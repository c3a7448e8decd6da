"""`tuneloop eval`, `generate` and `chat` on a finished tiny run."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, tiny_config, toy_chat_rows, write_jsonl
from tuneloop.train.run import train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("use-run")
    data = write_jsonl(folder / "toy.jsonl", toy_chat_rows())
    config = tiny_config(tiny_model_dir, data, folder / "run", max_steps=6)
    config.data.system_prompt = "Answer with one colour."
    config.eval.max_new_tokens = 4
    return train(config)


def test_eval_writes_metrics_and_report(tiny_run):
    result = run_cli("eval", str(tiny_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["primary"] in metrics["tuned"]
    assert {"exact_match", "token_f1", "rouge_l", "loss", "perplexity"} <= set(metrics["base"]) & set(metrics["tuned"])
    assert metrics["tuned"]["loss"] < metrics["base"]["loss"]
    for name in ("report.md", "report.html", "plots/loss.png", "plots/base_vs_tuned.png"):
        assert (tiny_run / name).exists(), name
    assert "base vs tuned" in result.output and "report.html" in result.output


def test_generate_answers_each_prompt(tiny_run):
    result = run_cli("generate", str(tiny_run), "--prompt", "what colour is the lime?", "--prompt", "and the plum?", "--max-new-tokens", "3")
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) >= 1


def test_chat_reads_until_an_empty_line(tiny_run):
    from click.testing import CliRunner

    from tuneloop.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["chat", str(tiny_run), "--max-new-tokens", "3"], input="hello\nagain\n\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("model>") == 2


def test_using_an_unfinished_run_is_refused(tmp_path):
    (tmp_path / "config.yaml").write_text("project: x\n")
    result = run_cli("generate", str(tmp_path), "--prompt", "hi")
    assert result.exit_code == 2 and "training did not finish" in result.output
