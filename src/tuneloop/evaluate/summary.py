"""Print a run's base-vs-tuned metrics as a terminal table."""

from __future__ import annotations

from pathlib import Path

from tuneloop.evaluate.report import few_shot_section
from tuneloop.text.metrics import LOWER_IS_BETTER

# Metrics where lower is better; the delta column is coloured accordingly.

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
    for extra in (few_shot_table(metrics), forgetting_table(metrics)):
        if extra is not None:
            console.print(extra)
    if run_dir is not None:
        console.print(f"report: {Path(run_dir) / 'report.html'}  (markdown: {Path(run_dir) / 'report.md'})")


def few_shot_table(metrics: dict):
    """Base model with k examples vs the tuned model on the few-shot rows; None when not measured."""
    from rich.table import Table

    section = few_shot_section(metrics)
    if not section or not section[2]:
        return None
    note, header, rows = section
    table = Table(title=f"few-shot baselines ({metrics['few_shot']['test_examples']} test rows)")
    for column in header:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def forgetting_table(metrics: dict):
    """General-ability suite, base vs tuned; None when not measured."""
    from rich.table import Table

    section = metrics.get("forgetting") or {}
    if "tuned" not in section:
        return None
    table = Table(title="forgetting: general-ability suite, base vs tuned")
    for column in ("metric", "base", "tuned", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, tuned in section["tuned"].items():
        base = section["base"].get(name)
        table.add_row(name, _fmt(base), _fmt(tuned), _delta(name, base, tuned))
    return table


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
