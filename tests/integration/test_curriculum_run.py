"""A training run in curriculum order on the tiny Llama (the curriculum's parts: tests/unit/train/test_curriculum.py)."""

from __future__ import annotations

import json

from helpers import tiny_config
from tuneloop.train.run import train


def test_training_with_a_curriculum_records_it_and_learns(tiny_model_dir, toy_chat_file, tmp_path):
    config = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", epochs=3, curriculum="loss", curriculum_pacing="linear", threads=1)
    out = train(config)
    summary = json.loads((out / "train.json").read_text())
    assert summary["curriculum"]["difficulty"] == "loss" and summary["curriculum"]["draws"] == 3 * 24
    losses = [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < losses[0]
