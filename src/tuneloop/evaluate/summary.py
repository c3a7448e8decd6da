"""Print a run's base-vs-tuned metrics as a terminal table."""

from __future__ import annotations

from pathlib import Path

# Metrics where lower is better; the delta column is coloured accordingly.
LOWER_IS_BETTER = {"loss", "perplexity"}


def print_metrics(metrics: dict, run_dir: Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    primary = metrics["primary"]
    table = Table(title=f"held-out test ({metrics['test_examples']} rows): base vs tuned")
    for column in ("metric", "base", "tuned", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in metrics["tuned"]:
        base, tuned = metrics["base"].get(name), metrics["tuned"][name]
        label = f"[bold]{name} (primary)[/bold]" if name == primary else name
        table.add_row(label, _fmt(base), _fmt(tuned), _delta(name, base, tuned))
    console = Console()
    console.print(table)
    if run_dir is not None:
        console.print(f"report: {Path(run_dir) / 'report.html'}  (markdown: {Path(run_dir) / 'report.md'})")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _delta(name: str, base, tuned) -> str:
    if base is None:
        return "-"
    delta = tuned - base
    better = delta < 0 if name in LOWER_IS_BETTER else delta > 0
    colour = "green" if better else ("red" if delta else "white")
    return f"[{colour}]{delta:+.3f}[/{colour}]"
