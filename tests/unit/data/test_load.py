import json

import pytest

from tuneloop.data.load import BadRow, RawRow, columns_of, read_rows
from tuneloop.errors import DataError


def where(rows):
    return [(type(r).__name__, r.line) for r in rows]


# --- CSV ---------------------------------------------------------------------------------


def test_csv_first_data_row_is_line_2_and_quoted_newlines_count(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('subject,body\nfirst,"one\ntwo\nthree"\nsecond,plain\n"third\nrow",x\nfourth,y\n')
    rows = list(read_rows(path))
    assert [(r.line, r.fields["subject"]) for r in rows] == [(2, "first"), (5, "second"), (6, "third\nrow"), (8, "fourth")]
    assert rows[0].fields["body"] == "one\ntwo\nthree"


def test_csv_blank_lines_are_skipped_without_shifting_line_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n\n3,4\n,\n5,6\n")
    assert [(r.line, r.fields["a"]) for r in read_rows(path)] == [(2, "1"), (4, "3"), (6, "5")]


def test_csv_wrong_cell_count_is_a_bad_row_and_reading_goes_on(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n1,2,3\nonly\n4,5\n")
    rows = list(read_rows(path))
    assert where(rows) == [("RawRow", 2), ("BadRow", 3), ("BadRow", 4), ("RawRow", 5)]
    assert rows[1].reason == "3 cells, header has 2"
    assert rows[2].reason == "1 cells, header has 2"


def test_csv_unclosed_quote_names_the_record_start(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,2\n3,"never closed\n5,6\n')
    with pytest.raises(DataError, match=r"t\.csv:3: unreadable CSV .*record starting on line 3"):
        list(read_rows(path))


def test_csv_header_is_stripped_and_bom_removed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeff subject , body\nx,y\n".encode("utf-8"))
    (row,) = read_rows(path)
    assert row.fields == {"subject": "x", "body": "y"}
    assert columns_of(path) == ["subject", "body"]


def test_csv_repeated_column_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,text\na,b\n")
    with pytest.raises(DataError, match="column 'text' appears more than once in the header"):
        list(read_rows(path))


def test_csv_cells_longer_than_the_csv_default_limit_are_read(tmp_path):
    path = tmp_path / "t.csv"
    long = "x" * 300_000
    path.write_text(f'text\n"{long}"\nshort\n')
    assert [(r.line, len(r.fields["text"])) for r in read_rows(path)] == [(2, 300_000), (3, 5)]


def test_csv_not_utf8_is_a_file_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"t\.csv: not UTF-8 text .*save the file with UTF-8"):
        list(read_rows(path))


# --- JSONL -------------------------------------------------------------------------------


def test_jsonl_bad_lines_are_reported_and_reading_goes_on(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a"}\n[1, 2]\n\n{"text": \n   \n{"text": "b"}\n"just a string"\n')
    rows = list(read_rows(path))
    assert where(rows) == [("RawRow", 1), ("BadRow", 2), ("BadRow", 4), ("RawRow", 6), ("BadRow", 7)]
    assert rows[1].reason == "expected a JSON object, got array"
    assert rows[2].reason.startswith("malformed JSON: Expecting value")
    assert rows[4].reason == "expected a JSON object, got string"
    assert rows[3].fields == {"text": "b"}


def test_jsonl_undecodable_line_is_a_bad_row(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n{"text": "b"}\n')
    rows = list(read_rows(path))
    assert where(rows) == [("RawRow", 1), ("BadRow", 2), ("RawRow", 3)]
    assert rows[1].reason.startswith("not UTF-8 text")


def test_jsonl_leading_bom_is_ignored(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes('\ufeff{"text": "a"}\n'.encode("utf-8"))
    assert [r.fields for r in read_rows(path)] == [{"text": "a"}]


# --- JSON --------------------------------------------------------------------------------


def test_json_array_records_are_numbered_from_1(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"text": "a"}, 5, {"text": "b"}]))
    rows = list(read_rows(path))
    assert where(rows) == [("RawRow", 1), ("BadRow", 2), ("RawRow", 3)]
    assert rows[1].reason == "expected a JSON object, got number"


def test_json_object_holding_one_array(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"version": 2, "data": [{"text": "a"}, {"text": "b"}]}))
    assert [(r.line, r.fields["text"]) for r in read_rows(path)] == [(1, "a"), (2, "b")]


def test_malformed_json_array_names_line_and_column(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"text": "a"},\n {"text": oops}\n]\n')
    with pytest.raises(DataError, match=r"d\.json: malformed JSON at line 3, column 11: Expecting value"):
        list(read_rows(path))


@pytest.mark.parametrize("content", ['"text"', '{"a": [1], "b": [2]}', '{"text": "a"}'])
def test_json_without_one_record_array_is_an_error(tmp_path, content):
    path = tmp_path / "d.json"
    path.write_text(content)
    with pytest.raises(DataError, match=r"d\.json: .*(expected a JSON array|several arrays \(a, b\))"):
        list(read_rows(path))


# --- Parquet, TXT/MD ---------------------------------------------------------------------


def test_parquet_rows_are_numbered(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"]}), path)
    assert [(r.line, r.fields) for r in read_rows(path)] == [(1, {"text": "a", "label": "x"}), (2, {"text": "b", "label": "y"})]
    assert columns_of(path) == ["text", "label"]


def test_parquet_nested_messages_arrive_as_lists_of_dicts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    messages = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]]
    pq.write_table(pa.table({"messages": messages}), path)
    (row,) = read_rows(path)
    assert row.fields["messages"] == messages[0]


def test_unreadable_parquet_is_a_file_error(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_text("not parquet at all")
    with pytest.raises(DataError, match=r"t\.parquet: not a readable Parquet file"):
        list(read_rows(path))


def test_text_files_become_blocks_with_their_first_line(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("# Title\nintro\n\n\nsecond block\nmore\n  \nthird\n")
    assert [(r.line, r.fields["text"]) for r in read_rows(path)] == [(1, "# Title\nintro"), (5, "second block\nmore"), (8, "third")]
    assert columns_of(path) == ["text"]


# --- file-level errors and columns -------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"^data file not found: {path}$"):
        list(read_rows(path))
    with pytest.raises(DataError, match="data file not found"):
        columns_of(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a folder; name the files inside it"):
        list(read_rows(tmp_path))


def test_unknown_extension_lists_supported_ones(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'; supported: \.csv, \.json, \.jsonl, \.md, \.parquet, \.txt"):
        list(read_rows(path))


def test_jsonl_columns_are_the_union_of_the_first_records(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\nbroken\n{"b": 2, "a": 3}\n{"c": 4}\n')
    assert columns_of(path) == ["a", "b", "c"]
    assert columns_of(path, sample=2) == ["a"]  # counts records, bad ones included


def test_raw_and_bad_rows_carry_their_source(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\nbroken\n')
    good, bad = read_rows(path)
    assert good == RawRow(str(path), 1, {"a": 1})
    assert isinstance(bad, BadRow) and (bad.source, bad.line, bad.field) == (str(path), 2, None)
