"""An evaluation suite: something ``tuneloop eval`` measures beyond base vs tuned on the test rows.

A suite is a handful of plain functions around one entry of ``metrics.json`` (its ``name``):

1. ``applies(task, config)``: None, or why it does not apply (the report shows the reason).
2. ``plan(run, config, task, test)``: cheap checks and choices before any model loads
   (raise ConfigError here); whatever it returns comes back to ``score``, ``section`` and ``files``.
3. ``score(plan, model, tokenizer, scoring)``: the base model, then the tuned one.
4. ``section(plan, base_scores, tuned_scores, config)``: the ``metrics.json`` entry.
5. ``report_rows(section, metrics)`` (the report) and ``table(section, metrics)`` (the terminal;
   None shows the report's rows under the report's heading).
6. ``gate_measures(section)``: numbers the retrain gate may compare, and ``files(plan, base, tuned)``:
   JSON-lines files written beside ``metrics.json``.

A new suite is one module that builds a ``Suite`` and one line in ``evaluate/suites.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from tuneloop.runs.folder import RunDir


@dataclass(frozen=True)
class Scoring:
    """The model a suite's ``score`` gets, and what the run already knows about it."""

    task: Any  # the run's task (tuneloop.objectives)
    config: Any  # the run's RunConfig
    which: str  # "base" or "tuned" (the retrain gate: production, candidate)
    packs: bool  # whether held-out loss may pack rows for this model
    predictions: list[str] | None = None  # its answers to the test rows, in order (None in the retrain gate)


class ReportTable(NamedTuple):
    """A suite's part of the report: a note, then a table (none without rows); cells as in table_cells."""

    note: str
    header: list[str] = []
    rows: list[list] = []


class Measure(NamedTuple):
    """One number the retrain gate may compare, for base (production) and tuned (candidate)."""

    base: float
    tuned: float
    lower_is_better: bool


def no_plan(run: RunDir, config, task, test: list) -> None:
    return None


def no_gate_measures(section: dict) -> dict[str, Measure]:
    return {}


def no_files(plan, base: dict, tuned: dict) -> dict[str, list[dict]]:
    return {}


@dataclass(frozen=True)
class Suite:
    name: str  # its key in metrics.json
    label: str  # how the report names it in a sentence: "Forgetting: not measured ..."
    heading: str  # its heading in the report
    applies: Callable[[Any, Any], str | None]
    score: Callable[[Any, Any, Any, Scoring], dict]
    section: Callable[[Any, dict, dict, Any], dict]
    report_rows: Callable[[dict, dict], ReportTable]
    table: Callable[[dict, dict], Any] | None = None
    plan: Callable[[RunDir, Any, Any, list], Any] = no_plan
    gate_measures: Callable[[dict], dict[str, Measure]] = no_gate_measures
    files: Callable[[Any, dict, dict], dict[str, list[dict]]] = no_files
