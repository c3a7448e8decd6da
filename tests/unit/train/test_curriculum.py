"""Curriculum: pacing, the order of the stream, per-example losses (a run in that order: tests/integration)."""

from __future__ import annotations

import pytest
import torch

from tuneloop.data.schema import Example
from tuneloop.train.curriculum import competence, curriculum_stream, difficulty_by_loss, ordered_rows
from tuneloop.text.tokenize import TokenizedExample, tokenize_chat


@pytest.mark.parametrize("pacing", ["linear", "root"])
def test_competence_starts_at_start_grows_and_reaches_everything(pacing):
    values = [competence(p / 10, 0.2, pacing) for p in range(11)]
    assert values[0] == pytest.approx(0.2)
    assert values == sorted(values) and values[-1] == 1.0


def test_root_pacing_lets_harder_examples_in_sooner_than_linear():
    assert competence(0.25, 0.2, "root") > competence(0.25, 0.2, "linear")


def test_stream_starts_with_the_easiest_and_sees_everything_before_repeating():
    difficulty = [float(d) for d in (9, 1, 8, 2, 7, 3, 6, 4, 5, 0)]  # example 9 is the easiest
    stream = curriculum_stream(difficulty, draws=20, start=0.2, pacing="linear", seed=0)
    assert stream[0] in {9, 1}  # competence 0.2 of 10 examples: the two easiest
    assert set(stream[:3]) <= {9, 1, 3, 5}  # then the next easiest join
    assert len(stream) == 20 and set(stream) == set(range(10))
    assert stream.index(0) >= 10  # the hardest example only in the second half of the run
    mean_rank = lambda part: sum(sorted(range(10), key=lambda i: difficulty[i]).index(i) for i in part) / len(part)  # noqa: E731
    assert mean_rank(stream[:5]) < mean_rank(stream[5:10]) < mean_rank(stream[10:])  # easy first


def test_with_everything_available_nothing_repeats_before_all_were_seen():
    stream = curriculum_stream([float(i) for i in range(7)], draws=14, start=1.0, pacing="root", seed=3)
    assert sorted(stream[:7]) == list(range(7)) and sorted(stream[7:]) == list(range(7))


def test_stream_is_seeded():
    difficulty = [float(i % 5) for i in range(30)]
    assert curriculum_stream(difficulty, 40, 0.3, "root", seed=1) == curriculum_stream(difficulty, 40, 0.3, "root", seed=1)
    assert curriculum_stream(difficulty, 40, 0.3, "root", seed=1) != curriculum_stream(difficulty, 40, 0.3, "root", seed=2)


def test_ordered_rows_pack_window_by_window_and_keep_the_order():
    examples = [TokenizedExample([i] * (3 + i % 3), [i] * (3 + i % 3)) for i in range(12)]
    rows = ordered_rows(examples, list(range(12)), packs=True, pack_length=10, window_tokens=20, seed=0)
    seen = [row.input_ids[start] for row in rows for start, pos in enumerate(row.position_ids) if pos == 0]
    assert sorted(seen) == list(range(12))
    windows = [max(row.input_ids) for row in rows]
    assert all(len(row) <= 10 for row in rows)
    assert windows[0] < windows[-1]  # rows of the first window come before those of the last
    unpacked = ordered_rows(examples, [3, 1, 2], packs=False, pack_length=10, window_tokens=20, seed=0)
    assert unpacked == [examples[3], examples[1], examples[2]]


def test_loss_difficulty_equals_each_examples_own_mean_loss(tiny_model_dir):
    from tuneloop.models.load import load_causal_lm
    from tuneloop.losses.label_loss import summed_label_loss

    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    rows = [
        tokenize_chat(tokenizer, Example("f", i, messages=({"role": "user", "content": "item %d " % i * (i + 1)}, {"role": "assistant", "content": "blue " * (i + 1)})))
        for i in range(5)
    ]
    packed = difficulty_by_loss(model, rows, pack_length=64)
    for row, value in zip(rows, packed):
        ids, labels = torch.tensor([row.input_ids]), torch.tensor([row.labels])
        total, count = summed_label_loss(model, {"input_ids": ids, "position_ids": torch.arange(len(row))[None], "labels": labels})
        assert value == pytest.approx(float(total) / count, rel=1e-4)


def test_loss_curriculum_on_an_unpacked_method_is_refused_before_the_run_folder_exists(tiny_model_dir, toy_chat_file, tmp_path):
    from helpers import tiny_config
    from tuneloop.config import with_method
    from tuneloop.errors import ConfigError
    from tuneloop.train.run import train

    config = tiny_config(tiny_model_dir, toy_chat_file, tmp_path / "run", curriculum="loss")
    config = with_method(config, "prompt")  # prompt tuning trains on padded rows, so it cannot be scored packed
    with pytest.raises(ConfigError, match="'loss' scores examples with packed rows"):
        train(config)
    assert not (tmp_path / "run").exists()
