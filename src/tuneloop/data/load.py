"""Read company data files row by row, remembering where every row came from.

Each reader yields :class:`RawRow` for a readable record and :class:`BadRow` for one that
cannot be parsed, so one broken line never hides the rest of the file. Problems that make the
whole file unreadable (bad quoting, malformed JSON array, wrong encoding) raise
:class:`~tuneloop.errors.DataError` naming the file and the line.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tuneloop.errors import DataError

# Long documents in one cell are normal in fine-tuning data; the csv default (128 KiB) is not.
CSV_FIELD_LIMIT = 2**31 - 1
# What a row says when its JSON is nested deeper than the parser's recursion allows.
TOO_DEEP = "JSON nested too deeply to read"


@dataclass(frozen=True)
class RawRow:
    """One readable record: ``line`` is its 1-based line (or record index) in ``source``."""

    source: str
    line: int
    fields: dict


@dataclass(frozen=True)
class BadRow:
    """One record that could not be parsed; ``field`` is None when the whole row is broken."""

    source: str
    line: int
    field: str | None
    reason: str


def read_rows(path: str | Path) -> Iterator[RawRow | BadRow]:
    """Every record of a CSV, JSONL, JSON, Parquet or TXT/MD file, in file order."""
    path = Path(path)
    reader = reader_for(path)
    try:
        yield from reader(path)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the file with UTF-8 encoding") from None


def reader_for(path: Path) -> Callable[[Path], Iterator[RawRow | BadRow]]:
    if path.is_dir():
        raise DataError(f"data file not found: {path} is a folder; name the files inside it")
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a regular file (a device, pipe or socket); name a data file")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    check_symlink_stays_inside(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; supported: {', '.join(sorted(READERS))}")
    return reader


def check_symlink_stays_inside(path: Path) -> None:
    """A data file that is a symlink must resolve inside its own folder: a link planted among the data
    files must not make a training document of a system file."""
    if not path.is_symlink():
        return
    folder, target = path.absolute().parent.resolve(), path.resolve()
    if not target.is_relative_to(folder):
        raise DataError(
            f"{path}: a symlink to {target}, outside the data folder {folder}; name the file itself, or copy it into the folder"
        )


# --- CSV ---------------------------------------------------------------------------------


def _read_csv(path: Path) -> Iterator[RawRow | BadRow]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        # strict: an unclosed quote raises instead of silently swallowing the rest of the file
        reader = csv.reader(handle, strict=True)
        start = 1  # physical line the next record starts on
        try:
            header = csv_header(path, next(reader, None))
            start = reader.line_num + 1
            for cells in reader:
                if any(cell.strip() for cell in cells):  # blank rows are not records
                    yield csv_record(path, start, header, cells)
                start = reader.line_num + 1
        except csv.Error as err:
            raise DataError(
                f"{path}:{start}: unreadable CSV ({err}); check the quotes of the record starting on line {start}"
            ) from None


def csv_header(path: Path, cells: list[str] | None) -> list[str]:
    """Column names, stripped; an empty file has none."""
    names = [cell.strip() for cell in cells or []]
    repeated = sorted(name for name, count in Counter(names).items() if name and count > 1)  # unnamed columns may repeat
    if repeated:
        raise DataError(f"{path}: column {repeated[0]!r} appears more than once in the header")
    return names


def csv_record(path: Path, line: int, header: list[str], cells: list[str]) -> RawRow | BadRow:
    # A wrong cell count usually means an unquoted comma or newline: the values would be shifted.
    if len(cells) != len(header):
        return BadRow(str(path), line, None, f"{len(cells)} cells, header has {len(header)}")
    return RawRow(str(path), line, dict(zip(header, cells)))


# --- JSON Lines and JSON -----------------------------------------------------------------


def _read_jsonl(path: Path) -> Iterator[RawRow | BadRow]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8").removeprefix("\ufeff")
            except UnicodeDecodeError as err:
                yield BadRow(str(path), number, None, f"not UTF-8 text ({err.reason})")
                continue
            if text.strip():
                yield jsonl_record(path, number, text)


def jsonl_record(path: Path, number: int, text: str) -> RawRow | BadRow:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return BadRow(str(path), number, None, f"malformed JSON: {err.msg} (column {err.colno})")
    except RecursionError:
        return BadRow(str(path), number, None, TOO_DEEP)
    if not isinstance(record, dict):
        return BadRow(str(path), number, None, f"expected a JSON object, got {json_type(record)}")
    return RawRow(str(path), number, record)


def _read_json(path: Path) -> Iterator[RawRow | BadRow]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        records = json_records(path, json.loads(text))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:  # one record too deep must not cost the others: read the array record by record
        records = json_array_records(path, text)
    for index, record in enumerate(records, start=1):
        if isinstance(record, BadRow):
            yield record
        elif isinstance(record, dict):
            yield RawRow(str(path), index, record)
        else:
            yield BadRow(str(path), index, None, f"expected a JSON object, got {json_type(record)}")


def json_array_records(path: Path, text: str) -> list:
    """The records of a top-level JSON array parsed one at a time; a record nested too deeply to parse
    becomes a :class:`BadRow`. Anything but an array of records is a file-level error."""
    decoder, records = json.JSONDecoder(), []
    position = skip_json_space(text, 0)
    if text[position : position + 1] != "[":
        raise DataError(f"{path}: {TOO_DEEP}; expected an array of records")
    position = skip_json_space(text, position + 1)
    while text[position : position + 1] != "]":
        index = len(records) + 1
        try:
            record, position = decoder.raw_decode(text, position)
        except RecursionError:
            record, position = BadRow(str(path), index, None, TOO_DEEP), end_of_json_value(path, text, position)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
        records.append(record)
        position = skip_json_space(text, position)
        if text[position : position + 1] == ",":
            position = skip_json_space(text, position + 1)
        elif text[position : position + 1] != "]":
            raise DataError(f"{path}: malformed JSON after record {index}: expected ',' or ']'")
    return records


def skip_json_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n\r":
        position += 1
    return position


def end_of_json_value(path: Path, text: str, position: int) -> int:
    """Where the array or object starting at ``position`` ends, found by counting brackets outside strings
    (no recursion, so any depth)."""
    depth, in_string, escaped = 0, False, False
    for index in range(position, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = char == "\\", char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
    raise DataError(f"{path}: malformed JSON: the file ends inside a record")


def json_records(path: Path, data) -> list:
    """The record list: the top-level array, or the one array inside a top-level object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        arrays = [key for key, value in data.items() if isinstance(value, list)]
        if len(arrays) == 1:
            return data[arrays[0]]
        if arrays:
            raise DataError(f"{path}: the top-level object holds several arrays ({', '.join(arrays)}); expected one")
    raise DataError(f'{path}: expected a JSON array of objects, or an object holding one array like {{"data": [...]}}')


def json_type(value) -> str:
    names = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- Parquet and plain text --------------------------------------------------------------


def _read_parquet(path: Path) -> Iterator[RawRow | BadRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file: {err}") from None
    index = 0
    for batch in parquet.iter_batches(batch_size=4096):  # bounded memory on large files
        for record in batch.to_pylist():
            index += 1
            yield RawRow(str(path), index, record)


def _read_text(path: Path) -> Iterator[RawRow | BadRow]:
    """One row per blank-line-separated block; ``line`` is the block's first line."""
    block: list[str] = []
    start = 0
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
SUPPORTED_EXTENSIONS = tuple(sorted(READERS))


def columns_of(path: str | Path, sample: int = 100) -> list[str]:
    """Column names of a file: the CSV/Parquet header, ``text`` for TXT/MD, or the union of
    the keys of the first ``sample`` JSON/JSONL records (in first-seen order)."""
    path = Path(path)
    suffix = path.suffix.lower()
    reader_for(path)  # same errors as read_rows for a missing file or unknown type
    if suffix == ".csv":
        return csv_columns(path)
    if suffix == ".parquet":
        return parquet_columns(path)
    if suffix in (".txt", ".md"):
        return ["text"]
    keys: dict[str, None] = {}
    for index, row in enumerate(read_rows(path)):
        if index >= sample:
            break
        if isinstance(row, RawRow):
            keys.update(dict.fromkeys(row.fields))
    return list(keys)


def csv_columns(path: Path) -> list[str]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return csv_header(path, next(csv.reader(handle), None))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the file with UTF-8 encoding") from None


def parquet_columns(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file: {err}") from None


def describe_columns(columns: list[str]) -> str:
    """'a, b, c' for messages; names with odd characters are quoted so spaces show."""
    return ", ".join(name if re.fullmatch(r"[\w.-]+", name) else repr(name) for name in columns) or "(none)"
