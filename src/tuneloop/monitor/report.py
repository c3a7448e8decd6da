"""The monitor's status table in the terminal."""

from __future__ import annotations

from tuneloop.progress import console


def print_report(report) -> None:
    from rich.table import Table

    table = Table(title=f"{report.project}: {report.version_id} in production; {report.live_prompts} live vs {report.train_prompts} training prompts")
    table.add_column("check")
    table.add_column("figures")
    table.add_column("status")
    for name, check in report.checks.items():
        figures = ", ".join(f"{key}={_fmt(value)}" for key, value in check.items() if key not in ("alert", "note"))
        status = "[red]ALERT[/red]" if check["alert"] else "[green]ok[/green]"
        table.add_row(name, figures or check.get("note", ""), status)
    console().print(table)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "-" if value is None else str(value)
