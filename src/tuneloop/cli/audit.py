"""``tuneloop audit``: one trust suite on a finished run, with options of its own.

Each audit is a command here on ``evaluate.audit.audit_run``: it scores the base and the tuned
model, keeps its section in ``RUN/audit.json`` and, when the run was evaluated, in
``metrics.json`` and the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tuneloop.cli.support import user_errors
from tuneloop.evaluate.audit import AUDIT_FILE, audit_run
from tuneloop.evaluate.summary import suite_table
from tuneloop.evaluate.suites import SUITES
from tuneloop.progress import console

audit_app = typer.Typer(help="Trust audits of a finished run (privacy, bias): base vs tuned, into its report.", no_args_is_help=True)


@audit_app.command("privacy")
@user_errors
def privacy_command(
    run: Path = typer.Argument(..., help="Run folder written by `tuneloop train` (training finished)."),
    rows: Optional[int] = typer.Option(
        None, "--rows", min=1, help="Membership inference: training rows and test rows attacked, as many of each (default: the run's eval.privacy_rows)."
    ),
    candidates: Optional[int] = typer.Option(
        None, "--candidates", min=1,
        help="Canaries: random secrets each planted one is ranked among; exposure by rank reaches at most "
        "log2(candidates + 1) bits (default: the run's eval.privacy_candidates).",
    ),  # fmt: skip
):
    """Membership inference (loss threshold, and calibrated by the base model's loss) and the exposure of the
    run's canaries (data.canaries), for base and tuned; into RUN/audit.json, and metrics.json and the report
    when the run was evaluated."""
    overrides = {"privacy": True, "privacy_rows": rows, "privacy_candidates": candidates}
    section = audit_run(run, "privacy", {key: value for key, value in overrides.items() if value is not None})
    suite = SUITES["privacy"]
    console().print(suite_table(suite, section, {}))
    console().print(suite.report_rows(section, {}).note)
    console().print(f"audit: {Path(run) / AUDIT_FILE}")


@audit_app.command("hallucination")
@user_errors
def audit_hallucination(
    run: Path = typer.Argument(..., help="A finished run folder (written by `tuneloop train`)."),
    truthfulqa: Optional[Path] = typer.Option(
        None, "--truthfulqa", help="A TruthfulQA-style multiple-choice file (JSON, JSONL or CSV): MC1 accuracy of base and tuned "
        "(default: the run's eval.truthfulqa_file).",
    ),  # fmt: skip
    fields: Optional[str] = typer.Option(
        None, help="JSON answers: comma-separated fields whose values must come from the prompt, e.g. 'product' (default: the run's eval.grounded_fields, else every field)."
    ),
    rows: Optional[int] = typer.Option(None, min=1, help="Test rows checked, and at most as many unanswerable rows made (default: the run's eval.hallucination_rows)."),
):
    """Hallucination: answers supported by their prompt, abstention where the prompt lacks the answer, base vs tuned.

    Runs on any chat run (the run's own eval.hallucination setting is overridden); the section goes to
    RUN/audit.json, RUN/hallucination.jsonl and, when the run was evaluated, metrics.json and the report.
    """
    overrides: dict = {"hallucination": True}
    if truthfulqa is not None:
        overrides["truthfulqa_file"] = str(truthfulqa)
    if fields is not None:
        overrides["grounded_fields"] = [name.strip() for name in fields.split(",") if name.strip()]
    if rows is not None:
        overrides["hallucination_rows"] = rows
    section = audit_run(run, "hallucination", overrides)
    console().print(SUITES["hallucination"].table(section, {}))
    typer.echo(f"per-answer checks: {run / 'hallucination.jsonl'}")


@audit_app.command("bias")
@user_errors
def bias_command(
    run: Path = typer.Argument(..., help="Finished run folder (written by `tuneloop train`)."),
    probe: Optional[Path] = typer.Option(
        None, "--probe", help="A CrowS-Pairs-format file (columns sent_more, sent_less, bias_type, optional stereo_antistereo; "
        "CSV or JSONL) for the likelihood probe, instead of the built-in pairs (eval.bias_probe_file).",
    ),  # fmt: skip
    pairs: Optional[int] = typer.Option(
        None, "--pairs", min=1, help="Counterfactual pairs scored, at most (eval.bias_pairs; default: the run's setting)."
    ),
    max_examples: Optional[int] = typer.Option(None, help="Search at most this many test rows for demographic terms (default: eval.max_examples)."),
):
    """Bias of base and tuned model: test prompts with demographic terms swapped (answer flips, score gap) and the
    stereotype likelihood probe; into RUN/audit.json, bias.jsonl and, when the run was evaluated, metrics.json and the report."""
    overrides = {"bias": True, **({"bias_probe_file": str(probe)} if probe else {}), **({"bias_pairs": pairs} if pairs else {})}
    section = audit_run(run, "bias", overrides, max_examples)
    console().print(SUITES["bias"].table(section, {}))
    console().print(f"written: {run / AUDIT_FILE}, {run / 'bias.jsonl'}")
