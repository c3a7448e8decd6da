"""Property-based: whatever the rows hold, reading and validating them ends in kept rows and dropped rows
(each with its line and a reason), or in a DataError naming the file; never any other exception (issue 18)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tuneloop.config import DataConfig
from tuneloop.data.load import BadRow, RawRow, read_rows
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Any text, lone surrogates, NUL and control characters included.
ANY_TEXT = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | ANY_TEXT
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=20)
TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "bot", ""]) | JSON_VALUES, "content": JSON_VALUES})
PLAIN_CHAT = st.fixed_dictionaries({"messages": st.tuples(
    st.fixed_dictionaries({"role": st.just("user"), "content": ANY_TEXT | SCALARS}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": ANY_TEXT | SCALARS}),
).map(list)})  # fmt: skip
CHAT_RECORD = PLAIN_CHAT | st.fixed_dictionaries({"messages": st.lists(TURN, max_size=4) | JSON_VALUES}) | JSON_VALUES
LABEL_RECORD = st.fixed_dictionaries({"text": ANY_TEXT | SCALARS, "label": ANY_TEXT | SCALARS}) | JSON_VALUES


def check_accounted_for(path: Path, data_format: str) -> None:
    """Every row read is kept or dropped with its line; kept text is clean UTF-8 without NUL, NaN or bytes."""
    try:
        report = load_examples(DataConfig(path=[str(path)], format=data_format))
    except DataError as err:
        assert path.name in str(err)
        event("refused")
        return
    event("rows kept" if report.examples else "no rows kept")
    event("rows dropped" if report.dropped else "no rows dropped")
    assert report.rows_read == len(report.examples) + len(report.dropped)
    assert all(row.line >= 1 and row.reason for row in report.dropped)
    for example in report.examples:
        texts = [example.text, example.label or "", *(turn["content"] for turn in example.messages)]
        for text in texts:
            text.encode("utf-8")  # no lone surrogate
            assert "\x00" not in text and text not in ("nan", "inf", "-inf") and not text.startswith("b'")


def as_jsonl_line(record) -> str:
    try:
        return json.dumps(record)  # NaN and Infinity written as JS literals, as some tools do
    except (ValueError, RecursionError):
        return "{"


@SETTINGS
@given(records=st.lists(CHAT_RECORD, min_size=1, max_size=8))
def test_any_jsonl_chat_rows_are_kept_or_dropped_with_a_reason(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    path.write_text("".join(as_jsonl_line(record) + "\n" for record in records), encoding="utf-8", errors="surrogatepass")
    check_accounted_for(path, "chat")


@SETTINGS
@given(records=st.lists(LABEL_RECORD, min_size=1, max_size=8))
def test_any_json_array_of_label_rows_is_kept_or_dropped_with_a_reason(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("json") / "rows.json"
    path.write_text(as_jsonl_line(records), encoding="utf-8", errors="surrogatepass")
    check_accounted_for(path, "label")


CELL = st.text(st.characters(codec="utf-8"), max_size=30)


@SETTINGS
@given(rows=st.lists(st.lists(CELL, min_size=0, max_size=4), min_size=1, max_size=8))
def test_any_csv_is_read_row_by_row_or_refused_naming_the_file(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "label"], *rows])
    try:
        read = list(read_rows(path))
    except DataError as err:
        assert path.name in str(err)
        return
    lines = [row.line for row in read]
    assert lines == sorted(lines) and all(isinstance(row, (RawRow, BadRow)) for row in read)
    check_accounted_for(path, "label")


@SETTINGS
@given(content=st.binary(max_size=200))
def test_any_bytes_as_a_text_file_are_read_or_refused_naming_the_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("txt") / "doc.txt"
    path.write_bytes(content)
    check_accounted_for(path, "text")
