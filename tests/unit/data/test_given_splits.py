"""Your own validation and test files (data.val_path, data.test_path): each is its split as is, read
and checked like data.path, and no training row may repeat one of their inputs."""

from __future__ import annotations

import hashlib

import pytest

from helpers import write_jsonl
from tuneloop.config import DataConfig, ModelConfig
from tuneloop.data.pipeline import check_dataset
from tuneloop.errors import DataError
from tuneloop.objectives import get_task
from tuneloop.train.prepare import prepare_dataset


def chat(question: str, answer: str = "a") -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture
def company(tmp_path):
    return write_jsonl(tmp_path / "company.jsonl", [chat(f"company question {i}") for i in range(30)])


def prepared(tiny_model_dir, **data):
    task = get_task("sft")
    cfg = DataConfig(**{"format": "chat", "val_fraction": 0.2, "test_fraction": 0.2, **data})
    return prepare_dataset(cfg, task.load_tokenizer(ModelConfig(name=str(tiny_model_dir))), task)


def test_a_golden_test_file_is_the_test_split_as_is(tiny_model_dir, company, tmp_path):
    golden = write_jsonl(tmp_path / "golden.jsonl", [chat(f"golden question {i}", "g") for i in range(7)])
    data = prepared(tiny_model_dir, path=[str(company)], test_path=str(golden))
    assert [(e.source, e.line) for e in data.splits.test] == [(str(golden), line) for line in range(1, 8)]
    # data.path is split into train and validation only (val_fraction of its 30 rows)
    assert {e.source for e in data.splits.train + data.splits.val} == {str(company)}
    assert (len(data.splits.train), len(data.splits.val)) == (24, 6)
    recorded = data.manifest["given_splits"]["test"]
    assert recorded == {"path": str(golden), "sha256": hashlib.sha256(golden.read_bytes()).hexdigest(), "rows_read": 7, "rows_kept": 7, "rows_dropped": 0}
    assert data.manifest["split_sizes"] == {"train": 24, "val": 6, "test": 7}


def test_both_files_given_leave_all_of_data_path_to_training(tiny_model_dir, company, tmp_path):
    val = write_jsonl(tmp_path / "val.jsonl", [chat(f"val question {i}") for i in range(3)])
    test = write_jsonl(tmp_path / "test.jsonl", [chat(f"test question {i}") for i in range(4)])
    data = prepared(tiny_model_dir, path=[str(company)], val_path=str(val), test_path=str(test))
    assert data.manifest["split_sizes"] == {"train": 30, "val": 3, "test": 4}
    assert set(data.manifest["given_splits"]) == {"val", "test"}


def test_bad_rows_of_the_given_file_are_reported_with_file_and_line(tiny_model_dir, company, tmp_path):
    golden = write_jsonl(tmp_path / "golden.jsonl", [chat("golden 1"), "{broken", chat("golden 2"), {"messages": []}])
    data = prepared(tiny_model_dir, path=[str(company)], test_path=str(golden))
    assert len(data.splits.test) == 2
    dropped = {f"{row['source']}:{row['line']}": row["reason"] for row in data.manifest["dropped_rows"]}
    assert dropped[f"{golden}:2"].startswith("malformed JSON") and f"{golden}:4" in dropped
    assert data.manifest["given_splits"]["test"]["rows_dropped"] == 2


def test_a_training_row_that_repeats_a_golden_test_input_is_dropped_and_named(tiny_model_dir, tmp_path):
    company = write_jsonl(tmp_path / "company.jsonl", [chat(f"company question {i}") for i in range(20)] + [chat("What is the refund window?", "30 days")])
    golden = write_jsonl(tmp_path / "golden.jsonl", [chat("golden question"), chat("what is the REFUND window", "thirty days")])
    data = prepared(tiny_model_dir, path=[str(company)], test_path=str(golden))
    assert all("refund" not in e.input_text.lower() for e in data.splits.train + data.splits.val)
    reason = f"leaks into the test split: same input as {golden}:2 (data.test_path)"
    assert {"source": str(company), "line": 21, "field": None, "reason": reason} in data.manifest["dropped_rows"]
    assert data.manifest["dropped_by_reason"] == {"leaks into the test split": 1}


def test_a_validation_file_sharing_an_input_with_the_test_file_is_refused(tiny_model_dir, company, tmp_path):
    val = write_jsonl(tmp_path / "val.jsonl", [chat("same question"), chat("val only")])
    test = write_jsonl(tmp_path / "test.jsonl", [chat("test only"), chat("Same question!")])
    with pytest.raises(DataError, match=rf"leakage: {test}:2 \(test\) has the same normalised text as {val}:1 \(val\)"):
        prepared(tiny_model_dir, path=[str(company)], val_path=str(val), test_path=str(test))


def test_given_file_is_read_with_the_columns_of_data_path(tiny_model_dir, tmp_path):
    rows = [{"question": f"q {i}", "answer": "a"} for i in range(20)]
    company = write_jsonl(tmp_path / "company.jsonl", rows)
    golden = write_jsonl(tmp_path / "golden.jsonl", [{"q": "golden"}])
    with pytest.raises(DataError, match=rf"{golden}: column 'question' does not exist"):
        prepared(tiny_model_dir, path=[str(company)], test_path=str(golden), format="prompt_completion", columns={"prompt": "question", "completion": "answer"})


def test_data_check_reports_the_given_split_and_the_leaking_row(company, tmp_path):
    golden = write_jsonl(tmp_path / "golden.jsonl", [chat("company question 3"), chat("golden")])
    summary = check_dataset(DataConfig(path=[str(company)], test_path=str(golden), val_fraction=0.2))
    assert summary["split_sizes"] == {"train": 23, "val": 6, "test": 2}
    assert summary["dropped"] == [f"{company}:4: leaks into the test split: same input as {golden}:1 (data.test_path)"]


def test_a_retrain_candidate_reads_only_its_new_rows_not_productions_split_files(tmp_path, monkeypatch):
    from tuneloop.config import load_config
    from tuneloop.loop import retrain

    production = load_config(None, {"data.path": ["company.csv"], "data.val_path": "val.csv", "data.test_path": "golden.csv"})
    trained = []
    monkeypatch.setattr(retrain, "train", lambda config: trained.append(config) or tmp_path / "candidate")
    retrain.train_candidate(production, tmp_path / "production", {"folder": str(tmp_path)}, tmp_path / "candidate", {})
    data = trained[0].data
    assert (data.path, data.val_path, data.test_path, data.test_fraction) == ([str(tmp_path / "train.jsonl")], None, None, 0.0)
