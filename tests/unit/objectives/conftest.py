"""Fixtures for the task tests: a tiny random T5 and a small translation-like data set."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from helpers import write_jsonl

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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine two threads contend badly."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
