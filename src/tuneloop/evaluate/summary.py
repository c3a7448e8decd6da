"""Print a run's base-vs-tuned metrics as a terminal table."""

from __future__ import annotations

from pathlib import Path

from tuneloop.evaluate.suites import SUITES
from tuneloop.evaluate.table_cells import rich_table
from tuneloop.evaluate.trust import TRUST_KEY, trust_facts, trust_rows
from tuneloop.text.metrics import LOWER_IS_BETTER


def print_metrics(metrics: dict, run_dir: Path | None = None, rows_named: str = "held-out test") -> None:
    """The table; ``rows_named`` says what the rows are (an evaluation file's name, say)."""
    from rich.console import Console
    from rich.table import Table

    primary = metrics["primary"]
    table = Table(title=f"{rows_named} ({metrics['test_examples']} rows): base vs tuned")
    for column in ("metric", "base", "tuned", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in metrics["tuned"]:
        base, tuned = metrics["base"].get(name), metrics["tuned"][name]
        label = f"[bold]{name} (primary)[/bold]" if name == primary else name
        table.add_row(label, _fmt(base), _fmt(tuned), _delta(name, base, tuned))
    console = Console()
    console.print(table)
    for name, suite in SUITES.items():
        extra = suite_table(suite, metrics.get(name), metrics)
        if extra is not None:
            console.print(extra)
    if TRUST_KEY in metrics:
        note, header, rows = trust_rows(metrics[TRUST_KEY])
        if rows:
            console.print(rich_table("trust: the risks of fine-tuning, base vs tuned", header, rows))
        for fact in trust_facts(metrics[TRUST_KEY]):
            console.print(fact, highlight=False)
    if run_dir is not None:
        console.print(f"report: {Path(run_dir) / 'report.html'}  (markdown: {Path(run_dir) / 'report.md'})")


def suite_table(suite, section: dict, metrics: dict):
    """A suite's terminal table (by default its report table under its report heading); None when not measured."""
    if not section or "skipped" in section:
        return None
    if suite.table is not None:
        return suite.table(section, metrics)
    note, header, rows = suite.report_rows(section, metrics)
    return rich_table(suite.heading, header, rows) if rows else None


def _fmt(value) -> str:
    if isinstance(value, int):  # a count
        return str(value)
    return "-" if value is None else f"{value:.3f}"


def _delta(name: str, base, tuned) -> str:
    if base is None:
        return "-"
    delta = tuned - base
    better = delta < 0 if name in LOWER_IS_BETTER else delta > 0
    colour = "green" if better else ("red" if delta else "white")
    shown = f"{delta:+d}" if isinstance(delta, int) else f"{delta:+.3f}"
    return f"[{colour}]{shown}[/{colour}]"
