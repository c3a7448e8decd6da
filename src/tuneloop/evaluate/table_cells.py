"""Table cells shared by the report, the terminal summary and the evaluation suites.

A cell is its text, or (text, css class): ``num`` right-aligns a number; ``better`` and ``worse``
colour a delta, green and red, in the HTML report and in the terminal alike.

>>> comparison_cells({"qa_accuracy": 0.75}, {"qa_accuracy": 0.7})
[['qa_accuracy', ('0.750', 'num'), ('0.700', 'num'), ('-0.050', 'num worse')]]
"""

from __future__ import annotations

import math

from tuneloop.text.metrics import LOWER_IS_BETTER


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt(value) -> str:
    if value is None:
        return "–"
    if is_number(value) and isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def fmt_delta(delta: float | None) -> str:
    if isinstance(delta, int):  # a count
        return f"{delta:+d}"
    return "–" if delta is None or math.isnan(delta) else f"{delta:+.3f}"


def change(name: str, base, tuned) -> tuple[float | None, bool | None]:
    """(tuned − base, whether that is an improvement); the direction is None where nothing changed."""
    delta = tuned - base if is_number(base) and is_number(tuned) else None
    if not delta or math.isnan(delta):
        return delta, None
    return delta, delta < 0 if name in LOWER_IS_BETTER else delta > 0


def delta_cell(name: str, base, tuned) -> tuple[str, str]:
    delta, better = change(name, base, tuned)
    return fmt_delta(delta), {True: "num better", False: "num worse"}.get(better, "num")


def comparison_cells(base: dict, tuned: dict) -> list[list]:
    """One row per metric of ``tuned``: name, base, tuned and the delta, coloured by its direction."""
    return [
        [name, (fmt(base.get(name)), "num"), (fmt(value), "num"), delta_cell(name, base.get(name), value)]
        for name, value in tuned.items()
    ]


def cell_text(cell: str | tuple[str, str]) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def rich_table(title: str, header: list[str], rows: list[list]):
    """The same cells as a terminal table: numbers right-aligned, deltas green or red."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for index, column in enumerate(header):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(_rich_cell(cell, escape) for cell in row))
    return table


def _rich_cell(cell: str | tuple[str, str], escape) -> str:
    text, cls = cell if isinstance(cell, tuple) else (cell, "")
    colour = "green" if "better" in cls else "red" if "worse" in cls else None
    return f"[{colour}]{escape(text)}[/{colour}]" if colour else escape(text)
