"""The retraining decision as a table in the terminal."""

from __future__ import annotations

from tuneloop.progress import console


def print_retrain(record: dict) -> None:
    from rich.table import Table

    verdict = "[green]promoted[/green]" if record["promoted"] else "[red]kept production[/red]"
    table = Table(title=f"{record['candidate']} vs {record['production_before']}: {verdict}")
    for column in ("check", "metric", "production", "candidate", "gain"):
        table.add_column(column)
    for name, check in record["checks"].items():
        if "skipped" in check:
            table.add_row(name, "skipped", "-", "-", "-")
            continue
        table.add_row(name, check["metric"], f"{check['production']:.4f}", f"{check['candidate']:.4f}", f"{check['gain']:+.4f}")
    console().print(table)
    console().print(record["reason"])
