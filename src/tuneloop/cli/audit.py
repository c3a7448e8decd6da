"""``tuneloop audit``: one trust suite on a finished run, with options of its own.

Each audit is a command here on ``evaluate.audit.audit_run``: it scores the base and the tuned
model, keeps its section in ``RUN/audit.json`` and, when the run was evaluated, in
``metrics.json`` and the report.
"""

from __future__ import annotations

import typer

audit_app = typer.Typer(help="Trust audits of a finished run (privacy, bias): base vs tuned, into its report.", no_args_is_help=True)
