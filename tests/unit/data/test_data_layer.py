import json
from collections import Counter

import pytest

from tuneloop.config import DataConfig
from tuneloop.data.load import BadRow, RawRow, read_rows
from tuneloop.data.schema import Example
from tuneloop.data.split import check_no_leakage, dataset_hash, split_train_val_test, Splits
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError


def test_csv_line_numbers_survive_multiline_quoted_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('subject,body\nfirst,"one\ntwo\nthree"\nsecond,plain\n')
    rows = list(read_rows(path))
    assert [(r.line, r.fields["subject"]) for r in rows] == [(2, "first"), (5, "second")]


def test_text_files_become_blocks_with_their_first_line(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("# Title\nintro\n\n\nsecond block\nmore\n\nthird\n")
    assert [(r.line, r.fields["text"]) for r in read_rows(path)] == [(1, "# Title\nintro"), (5, "second block\nmore"), (8, "third")]


def test_parquet_rows_are_numbered(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"]}), path)
    assert [(r.line, r.fields) for r in read_rows(path)] == [(1, {"text": "a", "label": "x"}), (2, {"text": "b", "label": "y"})]


def test_jsonl_bad_lines_are_reported_and_reading_goes_on(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a"}\n[1, 2]\n\n{"text": \n{"text": "b"}\n')
    rows = list(read_rows(path))
    assert [type(r).__name__ for r in rows] == ["RawRow", "BadRow", "BadRow", "RawRow"]
    assert [r.line for r in rows] == [1, 2, 4, 5]


def test_structured_columns_become_a_json_target(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text("subject,body,category,urgent,count\nLogin,It fails,bug,TRUE,3\n")
    cfg = DataConfig(path=[str(path)], format="prompt_completion", prompt_template="Subject: {subject}\n\n{body}",
                     target_columns=["category", "urgent", "count"], system_prompt="Triage.")
    (example,) = load_examples(cfg).examples
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant"]
    assert example.messages[1]["content"] == "Subject: Login\n\nIt fails"
    assert json.loads(example.target_text) == {"category": "bug", "urgent": True, "count": 3}


def test_duplicates_are_dropped_with_the_original_named(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "Hello, World", "label": "a"}\n{"text": "hello world!", "label": "a"}\n')
    report = load_examples(DataConfig(path=[str(path)], format="label"))
    assert len(report.examples) == 1
    assert report.dropped[0].line == 2 and report.dropped[0].reason == f"duplicate of {path}:1"


def labelled(n, labels=("a", "b", "c")):
    return [Example("f", i + 1, text=f"row number {i}", label=labels[i % len(labels)]) for i in range(n)]


def test_split_is_seeded_and_stratified():
    examples = labelled(300)
    first = split_train_val_test(examples, 0.1, 0.2, seed=3)
    again = split_train_val_test(examples, 0.1, 0.2, seed=3)
    other = split_train_val_test(examples, 0.1, 0.2, seed=4)
    assert first.sizes() == {"train": 210, "val": 30, "test": 60}
    assert [e.line for e in first.test] == [e.line for e in again.test] != [e.line for e in other.test]
    assert Counter(e.label for e in first.test) == {"a": 20, "b": 20, "c": 20}


@pytest.mark.parametrize("seed", range(3))
def test_near_duplicates_share_a_split(seed):
    rows = labelled(60)
    # "ROW number 3!" differs from row 3's "row number 3" only in case and punctuation.
    near = {Example("g", 100 + i, text=f"ROW number {i}!", label=rows[i].label): rows[i] for i in range(0, 60, 3)}
    splits = split_train_val_test(rows + list(near), 0.2, 0.2, seed=seed)
    split_of = {(e.source, e.line): name for name in ("train", "val", "test") for e in getattr(splits, name)}
    assert len(split_of) == 80  # every row landed in exactly one split
    for duplicate, original in near.items():
        assert split_of[(duplicate.source, duplicate.line)] == split_of[(original.source, original.line)], duplicate.text
    assert {split_of[("g", d.line)] for d in near} == {"train", "val", "test"}  # not all parked in one split
    check_no_leakage(splits)


def test_leakage_is_detected_and_named():
    a, b = Example("f", 1, text="Same text"), Example("g", 7, text="same  TEXT.")
    with pytest.raises(DataError, match=r"leakage: g:7 \(test\).*f:1 \(train\)"):
        check_no_leakage(Splits(train=[a], val=[], test=[b]))


def test_every_split_gets_a_row_when_there_are_three():
    splits = split_train_val_test(labelled(3, labels=("a", "b", "c")), 0.1, 0.1, seed=0)
    assert splits.sizes() == {"train": 1, "val": 1, "test": 1}


def test_dataset_hash_depends_on_content_not_location():
    a = [Example("f", 1, text="x"), Example("f", 2, text="y")]
    moved = [Example("g", 9, text="x"), Example("g", 3, text="y")]
    assert dataset_hash(a) == dataset_hash(moved) != dataset_hash(list(reversed(a)))
