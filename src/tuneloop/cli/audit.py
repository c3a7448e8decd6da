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
from tuneloop.evaluate.audit import audit_run
from tuneloop.evaluate.suites import SUITES
from tuneloop.progress import console

audit_app = typer.Typer(help="Trust audits of a finished run (privacy, bias): base vs tuned, into its report.", no_args_is_help=True)


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
    console().print(f"written: {run / 'audit.json'}, {run / 'bias.jsonl'}")
