"""KTO end to end on the tiny Llama with LoRA: train on ratings made from the generated support-reply
pairs (the chosen reply rated good, the rejected bad), evaluate base vs tuned, and what it refuses."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_jsonl
from tuneloop.demo.preferences import generate_preference_pairs, ratings_of_pairs


def rating_rows(n: int = 40, seed: int = 0) -> list[dict]:
    return ratings_of_pairs(generate_preference_pairs(n, seed))


def kto_args(model_dir, data, out, *extra):
    return (
        "train", "--task", "kto", "--model", str(model_dir), "--data", str(data), "--format", "ratings",
        "--method", "lora", "--r", "4", "--lr", "5e-3", "--max-steps", "16", "--tokens-per-batch", "2048",
        "--val-fraction", "0.1", "--test-fraction", "0.25", "--early-stopping-patience", "0", "--threads", "1",
        "--no-forgetting", "--out", str(out), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def kto_run(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("kto")
    out = folder / "run"
    result = run_cli(*kto_args(tiny_model_dir, write_jsonl(folder / "ratings.jsonl", rating_rows()), out))
    assert result.exit_code == 0, result.output
    return out


def test_kto_separates_good_from_bad_answers_better_than_the_base(kto_run):
    records = [json.loads(line) for line in (kto_run / "log.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in records) and not any("eval_perplexity" in r for r in records)

    result = run_cli("eval", str(kto_run))
    assert result.exit_code == 0, result.output
    metrics = json.loads((kto_run / "metrics.json").read_text())
    assert metrics["primary"] == "rating_accuracy"
    base, tuned = metrics["base"], metrics["tuned"]
    # The base is its own reference: every implicit reward is 0 (wrong by the sign rule, a coin toss by AUC).
    assert base["rating_accuracy"] == 0 and base["reward_auc"] == 0.5
    assert tuned["rating_accuracy"] >= 0.7 and tuned["reward_auc"] >= 0.8 and tuned["good_reward"] > tuned["bad_reward"]


def test_a_pairs_file_and_a_method_without_an_adapter_are_refused(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "ratings.jsonl", rating_rows(4))
    args = list(kto_args(tiny_model_dir, data, tmp_path / "run"))
    args[args.index("ratings")] = "pairs"
    result = run_cli(*args)
    assert result.exit_code == 2 and "data.format 'pairs' does not fit task 'kto'; it reads: ratings" in result.output
    args = list(kto_args(tiny_model_dir, data, tmp_path / "run"))
    args[args.index("lora")] = "full"
    args.remove("--r"), args.remove("4")
    result = run_cli(*args)
    assert result.exit_code == 2 and "method 'full' has none to switch off (use one of lora, dora, rslora, ia3)" in result.output
    assert not (tmp_path / "run").exists()
