"""The retraining and alignment decisions as tables in the terminal."""

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


def print_align(record: dict) -> None:
    """production vs candidate: mean held-out reward, win rate, frozen-test metric, general check, decision."""
    from rich.table import Table

    verdict = "[green]promoted[/green]" if record["promoted"] else "[red]kept production[/red]"
    checks = record["checks"]
    table = Table(title=f"align round {record['round']} ({record['objective']}, {len(record['feedback']['ids'])} feedback rows): "
                  f"{record['candidate']} vs {record['production_before']}: {verdict}")  # fmt: skip
    for column in ("check", "metric", "production", "candidate", "gain"):
        table.add_column(column)
    for name in ("reward", "frozen_test", "general"):
        check = checks[name]
        if "skipped" in check:
            table.add_row(name, "skipped", "-", "-", "-")
            continue
        gain = f"{check['gain']:+.4f}" if "gain" in check else "-"
        table.add_row(name, check["metric"], f"{check['production']:.4f}", f"{check['candidate']:.4f}", gain)
    if "win_rate" in checks["reward"]:
        table.add_row("win rate", "candidate wins (ties half)", "-", f"{checks['reward']['win_rate']:.2f}", "-")
    console().print(table)
    console().print(record["reason"])
