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
