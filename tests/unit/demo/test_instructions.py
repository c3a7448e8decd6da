"""The generated instruction mix: deterministic, usable as alpaca rows, and long-tailed in length."""

from __future__ import annotations

import json

import pytest

from tuneloop.demo.instructions import FIELDS, generate_instructions, write_instructions_jsonl


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_instructions(400, seed=0)


def size(row: dict) -> int:
    return sum(len(row[field]) for field in FIELDS)


def test_same_seed_same_rows_other_seed_other_rows():
    assert generate_instructions(40, seed=5) == generate_instructions(40, seed=5)
    assert generate_instructions(40, seed=5) != generate_instructions(40, seed=6)


def test_a_longer_draw_starts_with_the_shorter_one():
    """Benchmarks take the first n rows for training and the next ones for validation."""
    assert generate_instructions(400, seed=1)[:70] == generate_instructions(70, seed=1)


def test_rows_are_complete_and_prompts_distinct(rows):
    assert len(rows) == 400
    for row in rows:
        assert list(row) == list(FIELDS)
        assert row["instruction"].strip() and row["output"].strip()
    assert len({(row["instruction"], row["input"]) for row in rows}) == 400


def test_json_answers_parse(rows):
    extracted = [row for row in rows if row["instruction"].startswith("Extract")]
    assert len(extracted) > 30
    for row in extracted:
        assert isinstance(json.loads(row["output"]), dict)


def test_lengths_are_long_tailed(rows):
    """Most rows short, about one in ten several times longer (character counts; ~2.9 per SmolLM2 token)."""
    sizes = sorted(size(row) for row in rows)
    median = sizes[len(sizes) // 2]
    assert median < 450
    assert 0.05 <= sum(s > 1000 for s in sizes) / len(sizes) <= 0.2
    assert sizes[-1] > 3.5 * median
    assert sizes[-1] < 2000  # stays under 512 tokens with a chat template


def test_write_jsonl_round_trips(tmp_path, rows):
    path = write_instructions_jsonl(tmp_path / "instructions.jsonl", n=400, seed=0)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows
