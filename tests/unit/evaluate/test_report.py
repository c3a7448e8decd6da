"""The run report: plots, markdown and self-contained HTML."""

from __future__ import annotations

import re

import pytest

from tuneloop.evaluate.report import write_report

METRICS = {
    "primary": "json_field_accuracy",
    "base": {"exact_match": 0.0, "token_f1": 0.21, "rouge_l": 0.25, "json_field_accuracy": 0.3125,
             "json_valid": 0.4, "loss": 2.5, "perplexity": 12.18},
    "tuned": {"exact_match": 0.7, "token_f1": 0.93, "rouge_l": 0.95, "json_field_accuracy": 0.9,
              "json_valid": 1.0, "loss": 0.3, "perplexity": 1.35},
    "test_examples": 120,
    "model": "smollm2-135m-instruct",
    "few_shot": {"scores": {"k=0": {"json_field_accuracy": 0.0, "json_valid": 0.1}, "k=3": {"json_field_accuracy": 0.55, "json_valid": 0.9},
                            "tuned": {"json_field_accuracy": 0.9, "json_valid": 1.0}}, "test_examples": 50, "shots": [], "seed": 0},
    "forgetting": {"base": {"answer_rouge_l": 1.0, "qa_accuracy": 0.75, "qa_forgotten": 0, "general_perplexity": 10.0},
                   "tuned": {"answer_rouge_l": 0.6, "qa_accuracy": 0.7, "qa_forgotten": 3, "general_perplexity": 11.5},
                   "suite": {"prompts": 24, "questions": 48, "paragraphs": 20, "max_new_tokens": 48}},
    "calibration": {"gap": 0.04},  # an entry no suite owns: shown under its own name
}  # fmt: skip
LOG = [
    *({"step": s, "epoch": s / 40, "loss": 2.5 / s**0.5, "learning_rate": 1e-3, "tokens_per_s": 900.0} for s in range(1, 41)),
    *({"step": s, "eval_loss": 2.4 / s**0.4} for s in (10, 20, 30, 40)),
]
SAMPLES = [
    {"prompt": "Subject: <b>refund</b>\n\nI was charged twice & want a refund", "reference": '{"category": "billing"}',
     "base": "```json\n{\"category\": \"bug\"}\n```", "tuned": '{"category": "billing"}'},
]  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, write_report(run_dir, METRICS, LOG, SAMPLES)


def test_writes_plots_markdown_and_html(report):
    run_dir, written = report
    assert written == {
        "loss": run_dir / "plots" / "loss.png",
        "base_vs_tuned": run_dir / "plots" / "base_vs_tuned.png",
        "markdown": run_dir / "report.md",
        "html": run_dir / "report.html",
    }
    for path in written.values():
        assert path.is_file() and path.stat().st_size > 0
    assert written["loss"].read_bytes().startswith(b"\x89PNG")
    assert not list(run_dir.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_markdown_has_headline_table_plots_extras_and_samples(report):
    md = report[1]["markdown"].read_text(encoding="utf-8")
    assert "json_field_accuracy: 0.312 → 0.900 (+0.588)" in md
    assert "| metric | base | tuned | delta |" in md
    assert "| perplexity | 12.180 | 1.350 | -10.830 |" in md
    assert "](plots/loss.png)" in md and "](plots/base_vs_tuned.png)" in md
    assert "## Few-shot baselines vs the fine-tuned model" in md and "| base, 3-shot | 0.550 | 0.900 |" in md
    assert "| tuned (fine-tuned, 0-shot) | 0.900 | 1.000 |" in md
    assert "## Forgetting: general ability, base vs tuned" in md and "| general_perplexity | 10.000 | 11.500 | +1.500 |" in md
    assert "| qa_forgotten | 0 | 3 | +3 |" in md  # a count, printed as one
    assert "## calibration" in md and "0.040" in md
    assert "test_examples: 120" in md
    assert "````text\n```json" in md  # a fence longer than the backticks inside the sample


def test_html_is_self_contained_escaped_and_has_the_table(report):
    page = report[1]["html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2
    assert "src=\"plots/" not in page
    assert "<table>" in page and "<th>metric</th>" in page
    assert re.search(r'<td class="num better">\+0\.588</td>', page)
    assert re.search(r'<td class="num better">-2\.200</td>', page)  # loss went down: an improvement
    assert "&lt;b&gt;refund&lt;/b&gt;" in page and "<b>refund</b>" not in page
    assert "twice &amp; want" in page


def test_report_without_log_or_samples_skips_the_loss_plot(tmp_path):
    metrics = {"primary": "rouge_l", "base": {"rouge_l": 0.2}, "tuned": {"rouge_l": 0.4}, "test_examples": 3}
    written = write_report(tmp_path, metrics, [], [])
    assert set(written) == {"base_vs_tuned", "markdown", "html"}
    md = written["markdown"].read_text(encoding="utf-8")
    assert "plots/loss.png" not in md and "Sample predictions" not in md
    assert "rouge_l: 0.200 → 0.400 (+0.200)" in md
