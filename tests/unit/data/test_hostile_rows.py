"""Rows built to break the reader (issue 18): each one is dropped with its file, line and reason, the
rest of its file kept; file-level refusals name the file and the numbers."""

import csv
import json
import math
import time

import pytest

from helpers import toy_chat_rows, write_jsonl, run_cli
from tuneloop.config import DataConfig
from tuneloop.data.load import BadRow, RawRow, csv_header, read_rows
from tuneloop.data.pipeline import check_dataset, split_sources
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError

DEEP = 100_000  # far past Python's recursion limit


def chat_row(i: int, answer="fine") -> dict:
    return {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": answer}]}


def dropped(report) -> list[tuple[int, str | None, str]]:
    return [(row.line, row.field, row.reason) for row in report.dropped]


# --- 1. deep nesting ---------------------------------------------------------------------


def test_a_deeply_nested_jsonl_line_is_one_bad_row(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(chat_row(1)) + "\n" + "[" * DEEP + "]" * DEEP + "\n" + json.dumps(chat_row(3)) + "\n")
    rows = list(read_rows(path))
    assert [(type(r).__name__, r.line) for r in rows] == [("RawRow", 1), ("BadRow", 2), ("RawRow", 3)]
    assert rows[1].reason == "JSON nested too deeply to read"


def test_a_deeply_nested_record_of_a_json_array_is_one_bad_row(tmp_path):
    path = tmp_path / "deep.json"
    deep = '{"messages": ' + "[" * DEEP + '"a \\" ] ["' + "]" * DEEP + "}"
    path.write_text(f"[{json.dumps(chat_row(1))}, {deep} ,\n {json.dumps(chat_row(3))}]")
    rows = list(read_rows(path))
    assert [(type(r).__name__, r.line) for r in rows] == [("RawRow", 1), ("BadRow", 2), ("RawRow", 3)]
    assert isinstance(rows[1], BadRow) and rows[1].reason == "JSON nested too deeply to read"


def test_a_json_file_that_is_one_deep_value_is_a_file_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' * DEEP + "1" + "}" * DEEP)
    with pytest.raises(DataError, match=r"deep\.json: JSON nested too deeply to read"):
        list(read_rows(path))


def test_a_deeply_nested_messages_cell_drops_its_row_only(tmp_path):
    path = tmp_path / "deep.csv"
    deep = "[" * DEEP + "]" * DEEP
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["messages"], [json.dumps(chat_row(1)["messages"])], [deep], [json.dumps(chat_row(3)["messages"])]])
    report = load_examples(DataConfig(path=[str(path)], format="chat"))
    assert len(report.examples) == 2
    assert dropped(report) == [(3, "messages", "JSON nested too deeply to read")]


# --- 2. lone surrogates, 3. NUL, bytes, NaN, Infinity -------------------------------------


def test_a_lone_surrogate_is_dropped_at_validation(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(chat_row(1)) + "\n" + json.dumps(chat_row(2, answer="bad \ud800 text")) + "\n")
    report = load_examples(DataConfig(path=[str(path)], format="chat"))
    assert len(report.examples) == 1
    assert dropped(report) == [(2, "messages", "lone surrogate U+D800 at position 4 (not valid Unicode text)")]


def test_a_nul_inside_a_cell_is_dropped(tmp_path):
    path = tmp_path / "n.csv"
    path.write_bytes(b"text,label\nfine row,a\nnul \x00 inside,b\n")
    report = load_examples(DataConfig(path=[str(path)], format="label"))
    assert [e.text for e in report.examples] == ["fine row"]
    assert dropped(report) == [(3, "text", "NUL character at position 4")]


def test_bytes_are_refused_not_written_out_as_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    table = pa.table({"instruction": ["one", "two", "three"], "input": pa.array([None, b"\x00\xff", None], pa.binary()),
                      "output": ["a", "b", "c"]})  # fmt: skip
    pq.write_table(table, path)
    report = load_examples(DataConfig(path=[str(path)], format="alpaca"))
    assert [e.messages[0]["content"] for e in report.examples] == ["one", "three"]
    assert dropped(report) == [(2, "input", "expected text, got binary data (bytes)")]


@pytest.mark.parametrize("value, shown", [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")])
def test_nan_and_infinity_labels_are_refused(tmp_path, value, shown):
    path = tmp_path / "l.jsonl"
    path.write_text(f'{{"text": "one", "label": "a"}}\n{{"text": "two", "label": {value}}}\n{{"text": {value}, "label": "b"}}\n')
    report = load_examples(DataConfig(path=[str(path)], format="label"))
    assert [e.label for e in report.examples] == ["a"]
    reason = f"expected text, got the number {shown} (NaN or Infinity)"
    assert dropped(report) == [(2, "label", reason), (3, "text", reason)]


def test_nan_in_a_target_column_is_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"q": "one", "n": 1.5}\n{"q": "two", "n": NaN}\n')
    report = load_examples(DataConfig(path=[str(path)], format="prompt_completion", prompt_template="{q}", target_columns=["n"]))
    assert len(report.examples) == 1 and dropped(report) == [(2, "n", "expected text, got the number nan (NaN or Infinity)")]
    assert all(not math.isnan(json.loads(e.target_text)["n"]) for e in report.examples)


# --- 4. data check counts over-long rows against --max-length -----------------------------


def test_data_check_drops_rows_over_max_length_without_a_model(tmp_path):
    rows = toy_chat_rows(10)
    rows[4]["messages"][1]["content"] = "word " * 5000
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    summary = check_dataset(DataConfig(path=[str(path)], format="chat", max_length=64))
    assert summary["rows_kept"] == 9
    assert summary["dropped"] == [f"{path}:5: too long: 5007 words (at least as many tokens; --model counts them) > max_length 64"]


def test_data_check_cli_honours_max_length(tmp_path):
    rows = toy_chat_rows(10)
    rows[2]["messages"][0]["content"] = "many words " * 100
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    assert "too long" not in run_cli("data", "check", str(path), "--max-length", "500").output
    result = run_cli("data", "check", str(path), "--max-length", "100")
    assert result.exit_code == 0 and f"{path}:3: too long: 201 words" in result.output


# --- 5. symlinks out of the data folder ----------------------------------------------------


def test_a_symlink_out_of_the_data_folder_is_refused(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("a system file\n")
    (tmp_path / "data").mkdir()
    link = tmp_path / "data" / "doc.txt"
    link.symlink_to(outside)
    with pytest.raises(DataError, match=r"doc\.txt: a symlink to .*secret\.txt, outside the data folder"):
        list(read_rows(link))


def test_a_symlink_inside_the_data_folder_is_read(tmp_path):
    (tmp_path / "real.txt").write_text("kept\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert [r.fields for r in read_rows(tmp_path / "link.txt")] == [{"text": "kept"}]


# --- 6. too few rows for the requested splits ----------------------------------------------


def test_too_few_rows_for_the_requested_splits_are_refused_with_the_numbers(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [chat_row(1), {"messages": []}])
    cfg = DataConfig(path=[str(path)], format="chat", val_fraction=0.1, test_fraction=0.1)
    with pytest.raises(DataError, match=r"too few rows for the requested splits: .*one\.jsonl leaves 1 usable rows with 1 distinct "
                       r"inputs, and the validation \(data\.val_fraction=0\.1\) and test \(data\.test_fraction=0\.1\) split would be empty"):
        split_sources(cfg, [], [load_examples(cfg)])


def test_data_check_reports_what_train_would_refuse_after_every_row(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [chat_row(1), {"messages": []}])
    summary = check_dataset(DataConfig(path=[str(path)], format="chat", val_fraction=0.1, test_fraction=0.0))
    assert summary["dropped"] == [f"{path}:2: messages: empty conversation"]
    assert summary["train_refuses"] == [
        f"too few rows for the requested splits: {path} leaves 1 usable rows with 1 distinct inputs, and the validation "
        "(data.val_fraction=0.1) split would be empty; 3 distinct inputs give every split a row: add rows, or set the fraction to 0"
    ]


def test_one_row_without_held_out_splits_is_enough(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [chat_row(1)])
    cfg = DataConfig(path=[str(path)], format="chat", val_fraction=0.0, test_fraction=0.0)
    assert check_dataset(cfg)["split_sizes"] == {"train": 1, "val": 0, "test": 0}


# --- 7. the CSV header check is linear -----------------------------------------------------


def test_a_20000_column_header_is_checked_quickly(tmp_path):
    names = [f"c{i}" for i in range(20_000)]
    start = time.perf_counter()
    assert csv_header(tmp_path / "wide.csv", names) == names
    assert time.perf_counter() - start < 1.0  # was 8 s (quadratic); about 10 ms now


def test_a_20000_column_csv_reads_in_under_2_s(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(20_000)) + ",text\n" + "x," * 20_000 + "hello\n")
    start = time.perf_counter()
    rows = list(read_rows(path))
    assert time.perf_counter() - start < 2.0
    assert isinstance(rows[0], RawRow) and rows[0].fields["text"] == "hello"


def test_a_pipe_is_refused_not_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "rows.jsonl")  # reading it would block forever
    with pytest.raises(DataError, match=r"rows\.jsonl: not a regular file"):
        list(read_rows(tmp_path / "rows.jsonl"))


def test_a_split_error_names_the_file(tmp_path):
    path = write_jsonl(tmp_path / "one_label.jsonl", [{"text": f"ticket {i}", "label": "x"} for i in range(6)])
    with pytest.raises(DataError, match=r"one_label\.jsonl: cannot stratify by label"):
        check_dataset(DataConfig(path=[str(path)], format="label"))


def test_bytes_in_a_templated_column_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"subject": pa.array([b"ok", b"\xff"], pa.binary()), "answer": ["a", "b"]}), path)
    cfg = DataConfig(path=[str(path)], format="prompt_completion", prompt_template="Subject: {subject}", columns={"completion": "answer"})
    with pytest.raises(DataError, match=r"t\.parquet:1: subject: expected text, got binary data \(bytes\)"):
        load_examples(cfg)
