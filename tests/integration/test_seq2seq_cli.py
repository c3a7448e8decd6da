"""The seq2seq task through the CLI on a tiny random T5: train, eval and generate (moved from tests/unit/objectives)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from helpers import run_cli, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models gain nothing from threads

# A fixed word-for-word mapping: a random T5 learns it quickly, and the held-out rows are new
# combinations of the same words, so the tuned model can do better than the base on them.
LEXICON = {"red": "rouge", "blue": "bleu", "green": "vert", "cat": "chat", "dog": "chien", "big": "grand", "small": "petit", "house": "maison"}


def translation_rows(n: int = 40, seed: int = 0) -> list[dict]:
    """``n`` distinct prompt/completion rows: three English words -> their mapped words, same order."""
    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < n:
        words = tuple(rng.sample(sorted(LEXICON), 3))
        if words not in seen:
            seen.add(words)
            rows.append({"prompt": " ".join(words), "completion": " ".join(LEXICON[w] for w in words)})
    return rows


@pytest.fixture
def translation_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "translate.jsonl", translation_rows())


def test_train_then_eval_through_the_cli(tiny_t5_dir, translation_file, tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "train", "--task", "seq2seq", "--method", "lora", "--model", str(tiny_t5_dir), "--data", str(translation_file),
        "--format", "prompt_completion", "--r", "8", "--lr", "1e-2", "--max-steps", "40", "--tokens-per-batch", "64",
        "--early-stopping-patience", "0", "--val-fraction", "0.1", "--test-fraction", "0.2", "--max-new-tokens", "12",
        "--threads", "1", "--out", str(out),
    )  # fmt: skip  (one thread: on a busy 2-core machine two threads contend and run 20x slower)
    assert result.exit_code == 0, result.output
    result = run_cli("eval", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primary"] == "chrf" and metrics["task"] == "seq2seq"
    for side in ("base", "tuned"):
        assert {"chrf", "bleu", "rouge_l", "exact_match", "loss", "perplexity"} <= set(metrics[side])
    assert metrics["tuned"]["loss"] < metrics["base"]["loss"]
    # The trained run answers a prompt through the decoder (the chat template of a causal LM does not apply).
    result = run_cli("generate", str(out), "--prompt", "red cat house", "--max-new-tokens", "8")
    assert result.exit_code == 0, result.output
    assert result.output.strip(), "an answer was printed"
