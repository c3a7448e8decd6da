"""The normalised example every data format is turned into."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    """One usable row, normalised from any input format.

    ``source`` and ``line`` point back at where the row came from (1-based line number in the
    file for CSV/JSONL/text, 1-based record index for JSON arrays and Parquet), so every report
    can name it.

    Which fields are set depends on the format family:
      - chat-like (chat, prompt_completion, alpaca, sharegpt): ``messages``, a tuple of
        ``{"role": ..., "content": ...}`` dicts ending with an assistant turn;
      - text: ``text``;
      - label: ``text`` and ``label``;
      - pairs: the prompt, ``chosen`` and ``rejected`` (the two answers' text);
      - ratings: the prompt, ``completion``, ``good`` (the rating) and ``score`` (the number it
        came from, None for a word such as "good" or a boolean).

    The prompt of pairs and ratings is either plain text, ``prompt``, or a conversation,
    ``messages``: the system and user (and earlier assistant) turns the answers reply to, ending
    with a user turn, kept as turns so a trainer renders them with the chat template.
    """

    source: str
    line: int
    messages: tuple[dict, ...] = ()
    text: str = ""
    label: str | None = None
    prompt: str = ""
    chosen: str = ""
    rejected: str = ""
    completion: str = ""
    good: bool | None = None
    score: float | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def input_text(self) -> str:
        """The text a model sees as input (used for leakage checks and drift)."""
        if self.messages:
            return "\n".join(m["content"] for m in self.messages if m["role"] != "assistant")
        return self.prompt or self.text

    @property
    def prompt_turns(self) -> list[dict]:
        """The prompt of a pair or rating as chat turns: its conversation, or its text as one user turn."""
        return list(self.messages) if self.messages else [{"role": "user", "content": self.prompt}]

    @property
    def target_text(self) -> str:
        """What the model should produce: chosen answer, rated completion, last assistant turn, or label."""
        if self.chosen or self.completion:
            return self.chosen or self.completion
        if self.messages:
            return self.messages[-1]["content"]
        return self.label if self.label is not None else ""

    def leakage_key(self) -> str:
        """Normalised input text (for pairs and ratings, the prompt): two examples with the same key
        must share a split."""
        return normalise_text(self.input_text)

    def duplicate_key(self) -> tuple:
        """Two examples with the same key say the same thing: same input, same answer, and the same
        rejected answer or rating (two pairs sharing a chosen answer but rejecting different ones
        are two pairs; two ratings of one answer that disagree are both kept)."""
        return (self.leakage_key(), self.target_text, self.rejected, self.good, self.score)


def normalise_text(text: str) -> str:
    """Case-folded, accent-stripped, punctuation-free, single-spaced text."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w\s]", " ", text.casefold())
    return " ".join(text.split())
