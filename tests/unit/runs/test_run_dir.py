"""RunDir: what one stage writes into a run folder, the next reads back the same; unfinished or
foreign folders are refused with a message that names them."""

from __future__ import annotations

import pytest

from tuneloop.config import build_config
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits
from tuneloop.errors import TuneloopError
from tuneloop.runs.folder import RunDir


def example(line: int) -> Example:
    return Example("tickets.csv", line, messages=({"role": "user", "content": f"q{line}"}, {"role": "assistant", "content": f"a{line}"}))


def test_what_is_written_reads_back(tmp_path):
    run = RunDir(tmp_path / "run")
    config = build_config({"project": "triage", "method": {"name": "ia3"}, "out": str(run.path)})
    run.write_config(config)
    run.write_manifest({"dataset_hash": "abc", "labels": ["billing", "bug"]})
    run.write_splits(Splits(train=[example(1), example(2)], val=[example(3)], test=[example(4)]))
    run.write_train_summary({"steps": 3})
    run.write_metrics({"primary": "accuracy"})
    run.write_rows("predictions.jsonl", [{"base": "x", "tuned": "y"}])

    again = RunDir.existing(run.path)
    assert again.config() == config and again.method().artifact == "adapter"
    assert again.labels() == ["billing", "bug"] and again.manifest()["dataset_hash"] == "abc"
    assert [e.line for e in again.split("train")] == [1, 2] and again.split("test") == [example(4)]
    assert again.train_summary() == {"steps": 3} and again.metrics() == {"primary": "accuracy"}
    assert again.predictions_file.read_text() == '{"base": "x", "tuned": "y"}\n'
    assert again.log_records() == []  # nothing logged yet


def test_a_folder_without_a_config_is_not_a_run(tmp_path):
    with pytest.raises(TuneloopError, match=f"{tmp_path} is not a tuneloop run folder"):
        RunDir.existing(tmp_path)


def test_an_unfinished_run_has_no_artifact(tmp_path):
    run = RunDir(tmp_path)
    run.write_config(build_config({"method": {"name": "full"}}))
    with pytest.raises(TuneloopError, match=r"has no model/: training did not finish; re-run it with --resume"):
        run.artifact()
    (tmp_path / "model").mkdir()
    assert run.artifact() == tmp_path / "model"


def test_a_merged_folder_has_no_manifest_and_no_labels(tmp_path):
    run = RunDir(tmp_path)
    assert run.manifest() == {} and run.labels() is None and not run.has_split("test") and not run.has_metrics()
