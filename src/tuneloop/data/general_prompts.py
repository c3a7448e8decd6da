"""The general-ability suite written for tuneloop, shipped as package data in ``general_data/``.

Four parts, none downloaded, none overlapping:

* ``replay_prompts.txt``: general instructions whose base-model answers become replay rows
  mixed into training (:mod:`tuneloop.train.replay`), so the tuned model keeps its general habits;
* ``eval_prompts.txt``: held-out general instructions, never replayed; a tuned model's answers are
  scored against the base model's own answers (how much of its general behaviour it kept);
* ``general_text.txt``: paragraphs of plain general prose for perplexity (blank-line separated);
* ``qa.jsonl``: short general-knowledge questions with their accepted answers.

>>> len(eval_prompts()) > 0 and not set(eval_prompts()) & set(replay_prompts())
True
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources

DATA_PACKAGE = "tuneloop.data"
DATA_FOLDER = "general_data"


def _read(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath(DATA_FOLDER, name).read_text(encoding="utf-8")


def _lines(name: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in _read(name).splitlines() if line.strip())


@lru_cache(maxsize=None)
def replay_prompts() -> tuple[str, ...]:
    """General instructions the base model answers to make replay rows."""
    return _lines("replay_prompts.txt")


@lru_cache(maxsize=None)
def eval_prompts() -> tuple[str, ...]:
    """Held-out general instructions (never replayed), scored against the base model's answers."""
    return _lines("eval_prompts.txt")


@lru_cache(maxsize=None)
def general_paragraphs() -> tuple[str, ...]:
    """Paragraphs of general prose, for perplexity."""
    return tuple(" ".join(block.split()) for block in _read("general_text.txt").split("\n\n") if block.strip())


@lru_cache(maxsize=None)
def general_questions() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(question, accepted answers) pairs; an answer counts when it contains one of them as a word."""
    rows = [json.loads(line) for line in _lines("qa.jsonl")]
    return tuple((row["question"], tuple(a.lower() for a in row["answers"])) for row in rows)


def content_hash(texts) -> str:
    """sha256 of a sequence of texts (one per line), to key caches and record what was used."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def user_turn(text: str) -> list[dict]:
    """A one-turn conversation without any system prompt: the model is judged as a general assistant."""
    return [{"role": "user", "content": text}]
