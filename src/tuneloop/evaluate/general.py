"""General-knowledge QA scoring: does the model still know what any assistant should?

Fine-tuning on narrow company data can make a model forget (catastrophic forgetting). These
questions (``general_data/qa.jsonl``, part of the general suite) have one short unambiguous
answer each; the score is the share of answers that contain it. The forgetting suite asks them
without any system prompt, so a triage adapter is judged as a general assistant; its
``qa_accuracy`` is also the retrain gate's general-ability check.
"""

from __future__ import annotations

import re

from tuneloop.data.general_prompts import general_questions

# (question, regex alternatives) pairs, kept for callers that read the questions directly.
GENERAL_QUESTIONS: tuple[tuple[str, str], ...] = tuple(
    (question, "|".join(re.escape(a) for a in answers)) for question, answers in general_questions()
)


def answer_is_right(answer: str, accepted) -> bool:
    """Whether ``answer`` contains one of the ``accepted`` answers as whole words (case-insensitive)."""
    pattern = "|".join(re.escape(a.lower()) for a in accepted)
    return re.search(rf"\b({pattern})\b", answer.lower()) is not None


def qa_hits(replies: list[str]) -> list[bool]:
    """Whether each reply answers its general question right, ``replies`` in the order of :func:`general_questions`."""
    return [answer_is_right(reply, accepted) for reply, (_, accepted) in zip(replies, general_questions(), strict=True)]


def qa_accuracy(replies: list[str]) -> float:
    """Share of the general questions answered right, ``replies`` in the order of :func:`general_questions`."""
    hits = qa_hits(replies)
    return sum(hits) / len(hits)

