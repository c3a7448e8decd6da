"""Every bad input the foundation issue names: a clear message, exit 2, no run folder left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli


def assert_user_error(result, *fragments: str):
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def train_args(model: Path | str, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--out", str(out), "--max-steps", "1", *extra]


def test_data_check_reports_exactly_the_three_planted_bad_rows(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    rows = [dict(good, messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]) for i in range(8)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, '{"messages": [oops')  # line 3: malformed JSON
    lines.insert(5, json.dumps({"messages": [{"role": "user", "content": "no answer"}]}))  # line 6
    lines.insert(8, json.dumps({"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "x"}]}))  # line 9
    path = tmp_path / "planted.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("data", "check", str(path), "--format", "chat")
    assert result.exit_code == 0, result.output
    reported = [line.strip() for line in result.output.splitlines() if line.strip().startswith(str(path))]
    assert [r.split(":")[1] for r in reported] == ["3", "6", "9"], result.output
    assert "malformed JSON" in reported[0] and "no assistant turn" in reported[1] and "empty user turn" in reported[2]
    assert "kept 8, dropped 3" in result.output


def test_missing_file(tmp_path):
    assert_user_error(run_cli("data", "check", str(tmp_path / "nope.csv")), "data file not found", "nope.csv")


def test_unknown_format(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "x"}\n')
    assert_user_error(run_cli("data", "check", str(path), "--format", "tweets"), "data.format", "tweets")


def test_mapped_column_that_does_not_exist_lists_existing_ones(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("question,answer\nwhat?,that\n")
    result = run_cli("data", "check", str(path), "--format", "prompt_completion", "--columns", "prompt=query,completion=answer")
    assert_user_error(result, "column 'query' does not exist", "question, answer")


def test_malformed_json_file_names_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"text": "a"},\n {"text": oops}\n]\n')
    assert_user_error(run_cli("data", "check", str(path), "--format", "text"), "d.json", "line 3")


def test_no_usable_row_exits_non_zero(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": ""}\n{"text": "  "}\n')
    assert_user_error(run_cli("data", "check", str(path), "--format", "text"), "no usable rows", "d.jsonl:1: text: empty")


def test_single_class_label_when_stratifying(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"row {i},spam\n" for i in range(10)))
    assert_user_error(run_cli("data", "check", str(path), "--format", "label"), "every row has the label 'spam'", "stratify")


def test_unknown_config_key_reports_its_path(tmp_path, tiny_model_dir, toy_chat_file):
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  epochz: 1\n")
    out = tmp_path / "run"
    result = run_cli("train", str(config), "--model", str(tiny_model_dir), "--data", str(toy_chat_file), "--out", str(out))
    assert_user_error(result, "train.epochz: unknown key")
    assert not out.exists()


def test_model_path_that_does_not_exist(tmp_path, toy_chat_file):
    out = tmp_path / "run"
    assert_user_error(run_cli(*train_args("./models/missing", toy_chat_file, out)), "model path does not exist: ./models/missing")
    assert not out.exists()


def test_pickle_checkpoint_without_allow_pickle(tmp_path, tiny_model_dir, toy_chat_file):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    torch.save(load_file(tiny_model_dir / "model.safetensors"), folder / "pytorch_model.bin")
    out = tmp_path / "run"
    assert_user_error(run_cli(*train_args(folder, toy_chat_file, out)), "pickle checkpoint", "--allow-pickle")
    assert not out.exists()


def test_bad_data_leaves_no_run_folder(tmp_path, tiny_model_dir):
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "only a question"}]}\n')
    out = tmp_path / "run"
    assert_user_error(run_cli(*train_args(tiny_model_dir, path, out, "--format", "chat")), "no usable rows", "no assistant turn")
    assert not out.exists()
