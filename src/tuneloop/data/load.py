"""Read company data files row by row, remembering where every row came from.

Each reader yields :class:`RawRow` for a readable record and :class:`BadRow` for one that
cannot be parsed, so one broken line never hides the rest of the file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tuneloop.errors import DataError


@dataclass(frozen=True)
class RawRow:
    source: str
    line: int
    fields: dict


@dataclass(frozen=True)
class BadRow:
    source: str
    line: int
    field: str | None
    reason: str


def read_rows(path: str | Path) -> Iterator[RawRow | BadRow]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; supported: {', '.join(sorted(READERS))}")
    yield from reader(path)


def _read_csv(path: Path) -> Iterator[RawRow | BadRow]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:  # reads the header
            return
        line = reader.line_num + 1  # the line the next record starts on
        for record in reader:
            if None in record:
                yield BadRow(str(path), line, None, f"{len(record[None]) + len(reader.fieldnames)} cells, header has {len(reader.fieldnames)}")
            else:
                yield RawRow(str(path), line, dict(record))
            line = reader.line_num + 1


def _read_jsonl(path: Path) -> Iterator[RawRow | BadRow]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                yield BadRow(str(path), number, None, f"malformed JSON: {err.msg} (column {err.colno})")
                continue
            if not isinstance(record, dict):
                yield BadRow(str(path), number, None, f"expected a JSON object, got {type(record).__name__}")
                continue
            yield RawRow(str(path), number, record)


def _read_json(path: Path) -> Iterator[RawRow | BadRow]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects (or an object holding one array)")
    for index, record in enumerate(data, start=1):
        if isinstance(record, dict):
            yield RawRow(str(path), index, record)
        else:
            yield BadRow(str(path), index, None, f"expected a JSON object, got {type(record).__name__}")


def _read_parquet(path: Path) -> Iterator[RawRow | BadRow]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file: {err}") from None
    for index, record in enumerate(table.to_pylist(), start=1):
        yield RawRow(str(path), index, record)


def _read_text(path: Path) -> Iterator[RawRow | BadRow]:
    """One row per blank-line-separated block; ``line`` is the block's first line."""
    block, start = [], 0
    for number, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if text.strip():
            start = start or number
            block.append(text)
        elif block:
            yield RawRow(str(path), start, {"text": "\n".join(block)})
            block, start = [], 0
    if block:
        yield RawRow(str(path), start, {"text": "\n".join(block)})


READERS: dict[str, Callable[[Path], Iterator[RawRow | BadRow]]] = {
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".parquet": _read_parquet,
    ".txt": _read_text,
    ".md": _read_text,
}


def columns_of(path: str | Path, sample: int = 100) -> list[str]:
    """Column names of a file: the CSV/Parquet header, or the keys of the first JSON records."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    keys: dict[str, None] = {}
    for index, row in enumerate(read_rows(path)):
        if index >= sample:
            break
        if isinstance(row, RawRow):
            keys.update(dict.fromkeys(row.fields))
    return list(keys)
