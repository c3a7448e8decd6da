"""A TruthfulQA-style multiple-choice file, the hallucination audit's user-supplied probe (``eval.truthfulqa_file``).

Accepted shapes, one question per record (JSON array, JSONL or CSV):

* TruthfulQA's multiple-choice JSON: ``question`` and ``mc1_targets``, either
  ``{"choices": [...], "labels": [1, 0, ...]}`` or ``{"choice text": 1, "other": 0, ...}``; exactly
  one choice is labelled 1 (in a CSV, the cell holds that object as JSON);
* TruthfulQA.csv's flat columns: ``question``, ``best_answer`` and ``incorrect_answers`` (answers
  separated by ``;``); the column names may be written as in that file (``Best Answer``).

Every record is checked; the first bad one raises :class:`DataError` naming the file, the line
(record index in a JSON array) and the field.

>>> read_mc_questions("probe.jsonl")[0]  # doctest: +SKIP
McQuestion(question='What happens if you crack your knuckles a lot?', choices=(...), correct=0, line=1)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from tuneloop.data.load import BadRow, read_rows
from tuneloop.errors import DataError

MC_EXTENSIONS = (".json", ".jsonl", ".csv")


class McQuestion(NamedTuple):
    """One multiple-choice question: ``choices[correct]`` is its one true answer; ``line`` where it was read."""

    question: str
    choices: tuple[str, ...]
    correct: int
    line: int


class McRowError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")


def read_mc_questions(path: str | Path) -> list[McQuestion]:
    """Every question of the file, checked; a DataError names the first bad record's file, line and field."""
    path = Path(path)
    if path.suffix.lower() not in MC_EXTENSIONS:
        raise DataError(f"{path}: a multiple-choice file must be {', '.join(MC_EXTENSIONS)}, got {path.suffix or 'no extension'!r}")
    questions = []
    for row in read_rows(path):
        if isinstance(row, BadRow):
            raise DataError(f"{row.source}:{row.line}: {row.field + ': ' if row.field else ''}{row.reason}")
        try:
            questions.append(mc_question({flat_name(key): value for key, value in row.fields.items()}, row.line))
        except McRowError as err:
            raise DataError(f"{path}:{row.line}: {err}") from None
    if not questions:
        raise DataError(f"{path}: no questions in the file")
    return questions


def flat_name(column: str) -> str:
    """``Best Answer`` -> ``best_answer``: TruthfulQA.csv's headers as field names."""
    return "_".join(str(column).strip().casefold().split())


def mc_question(fields: dict, line: int) -> McQuestion:
    question = text_field(fields, "question")
    if "mc1_targets" in fields:
        choices, correct = mc1_targets(fields["mc1_targets"])
    elif "best_answer" in fields or "incorrect_answers" in fields:
        choices, correct = flat_choices(fields)
    else:
        raise McRowError("mc1_targets", "missing (give mc1_targets, or best_answer and incorrect_answers)")
    return McQuestion(question, choices, correct, line)


def text_field(fields: dict, name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise McRowError(name, "missing")
    if not isinstance(value, str) or not value.strip():
        raise McRowError(name, "empty" if isinstance(value, str) else f"expected text, got {type(value).__name__}")
    return value.strip()


def mc1_targets(value) -> tuple[tuple[str, ...], int]:
    """(choices, index of the true one) from ``{"choices", "labels"}`` or ``{choice: label}``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise McRowError("mc1_targets", f"not JSON: {err.msg}") from None
    if not isinstance(value, dict):
        raise McRowError("mc1_targets", f"expected an object, got {type(value).__name__}")
    if "choices" in value or "labels" in value:
        choices, labels = value.get("choices"), value.get("labels")
    else:
        choices, labels = list(value), list(value.values())
    if not isinstance(choices, list) or not isinstance(labels, list):
        raise McRowError("mc1_targets", "choices and labels must both be lists")
    if len(choices) != len(labels):
        raise McRowError("mc1_targets", f"{len(choices)} choices but {len(labels)} labels")
    return checked_choices(choices, labels)


def checked_choices(choices: list, labels: list) -> tuple[tuple[str, ...], int]:
    if len(choices) < 2:
        raise McRowError("mc1_targets", f"{len(choices)} choice(s); a question needs at least 2")
    if any(not isinstance(choice, str) or not choice.strip() for choice in choices):
        raise McRowError("mc1_targets", "every choice must be non-empty text")
    if any(isinstance(label, str) or label not in (0, 1) for label in labels):
        raise McRowError("mc1_targets", f"labels must be 0 or 1, got {labels}")
    if sum(label == 1 for label in labels) != 1:
        raise McRowError("mc1_targets", f"exactly one choice must be labelled 1, got {sum(label == 1 for label in labels)}")
    return tuple(choice.strip() for choice in choices), labels.index(1)


def flat_choices(fields: dict) -> tuple[tuple[str, ...], int]:
    """TruthfulQA.csv: the best answer first, then the ``;``-separated incorrect answers."""
    best = text_field(fields, "best_answer")
    incorrect = [answer.strip() for answer in text_field(fields, "incorrect_answers").split(";") if answer.strip()]
    if not incorrect:
        raise McRowError("incorrect_answers", "no answers (separate them with ';')")
    return (best, *incorrect), 0
