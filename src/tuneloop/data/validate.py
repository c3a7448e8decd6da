"""Validate data row by row: keep every usable row, report every other one with file:line."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuneloop.config import DataConfig
from tuneloop.data.formats import FORMATS, RowError, template_fields
from tuneloop.data.load import BadRow, RawRow, columns_of, read_rows
from tuneloop.data.schema import Example
from tuneloop.errors import DataError


@dataclass(frozen=True)
class DroppedRow:
    source: str
    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class DataReport:
    examples: list[Example] = field(default_factory=list)
    dropped: list[DroppedRow] = field(default_factory=list)
    rows_read: int = 0

    def dropped_by_reason(self) -> Counter:
        return Counter(reason_kind(d.reason) for d in self.dropped)


def reason_kind(reason: str) -> str:
    """'malformed JSON: Expecting value (column 3)' -> 'malformed JSON' (for counting)."""
    return reason.split(":", 1)[0].split(" of ", 1)[0].split(" (", 1)[0]


def load_examples(cfg: DataConfig) -> DataReport:
    """Read every file of ``cfg.path``; bad rows are dropped and reported, duplicates too."""
    normalise = FORMATS.get(cfg.format)
    if normalise is None:
        raise DataError(f"unknown format {cfg.format!r}; choose one of: {', '.join(FORMATS)}")
    report = DataReport()
    first_seen: dict[tuple[str, str], DroppedRow] = {}
    for path in cfg.path:
        check_columns_exist(Path(path), cfg)
        for row in read_rows(path):
            report.rows_read += 1
            example = normalise_row(row, normalise, cfg, report)
            if example is not None:
                keep_unless_duplicate(example, first_seen, report)
    if not report.examples:
        reasons = "; ".join(str(d) for d in report.dropped[:3])
        raise DataError(f"no usable rows in {', '.join(cfg.path)}: {report.rows_read} rows read, all dropped; first reasons: {reasons}")
    return report


def normalise_row(row: RawRow | BadRow, normalise, cfg: DataConfig, report: DataReport) -> Example | None:
    if isinstance(row, BadRow):
        report.dropped.append(DroppedRow(row.source, row.line, row.field, row.reason))
        return None
    try:
        example = normalise(row.fields, cfg)
    except RowError as err:
        report.dropped.append(DroppedRow(row.source, row.line, err.field, err.reason))
        return None
    return dataclasses.replace(example, source=row.source, line=row.line)


def keep_unless_duplicate(example: Example, first_seen: dict, report: DataReport) -> None:
    key = (example.leakage_key(), example.target_text)
    if key in first_seen:
        original = first_seen[key]
        report.dropped.append(DroppedRow(example.source, example.line, None, f"duplicate of {original.source}:{original.line}"))
        return
    first_seen[key] = DroppedRow(example.source, example.line, None, "")
    report.examples.append(example)


def check_columns_exist(path: Path, cfg: DataConfig) -> None:
    """A mapped, templated or target column missing from the file is a file-level error."""
    if path.suffix.lower() in (".txt", ".md") or not path.is_file():
        return
    wanted = list(cfg.columns.values()) + template_fields(cfg.prompt_template or "") + list(cfg.target_columns or [])
    existing = columns_of(path)
    missing = [name for name in wanted if name not in existing]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} does not exist; columns in the file: {', '.join(existing)}")


def drop_too_long(report: DataReport, count_tokens: Callable[[Example], int], max_length: int) -> DataReport:
    """Move examples longer than ``max_length`` tokens to the dropped rows."""
    kept = []
    for example in report.examples:
        length = count_tokens(example)
        if length > max_length:
            report.dropped.append(DroppedRow(example.source, example.line, None, f"too long: {length} tokens > max_length {max_length}"))
        else:
            kept.append(example)
    if not kept:
        raise DataError(f"every usable row is longer than data.max_length={max_length} tokens")
    report.examples = kept
    return report
