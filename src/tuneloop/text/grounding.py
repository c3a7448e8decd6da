"""Is an answer grounded in the text it was given? Lexical support and abstention, pure functions over strings.

An answer's **content units** are what it claims: for a JSON object, the string (and number)
values of its fields, each one unit (only ``fields`` when given); for text, every quoted string,
number and content word (a word of two or more letters that is not a stop word), each kind
tagged. A unit is **supported** when its normalised words appear, in order and as whole words,
in the normalised source text (the whole prompt); words are compared by a light stem (``ing``,
``ed`` or a plural ``s`` cut from words of five letters or more), so "uploads" is supported by
"uploaded". Lexical support cannot see paraphrase: a right answer in other words is unsupported,
and the reference answers' own rate (see the suite) is the floor it reaches.

An answer **abstains** when it says it cannot answer (one of ``ABSTENTION_PHRASES``, or nothing but
an abstention value such as "Unknown."), or, for a JSON answer, when every field it should fill is
missing, null or one of ``ABSTENTION_VALUES``. An abstaining answer has no content units: declining
is not a claim. An empty answer neither claims nor declines.

>>> [u.text for u in content_units('The invoice INV-2291 was paid on "March 3"')]
['march 3', '2291', 'invoice', 'inv', 'paid']
>>> unsupported_units(content_units('{"product": "Vault", "priority": "high"}'), "Vault backups fail")
[Unit(kind='value', text='high')]
"""

from __future__ import annotations

import re
from typing import NamedTuple

from tuneloop.data.schema import normalise_text
from tuneloop.text.metrics import extract_json_object

# Function words and auxiliaries: words that carry no claim of their own.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below between
    both but by can could did do does doing done down during each either else even ever every few for from further get
    got had has have having he her here hers herself him himself his how i if in into is it its itself just may me
    might mine more most much must my myself neither no nor not now of off on once only or other ought our ours
    ourselves out over own per please same shall she should so some such than that the their theirs them themselves
    then there these they this those through thus to too under until up upon us very was we were what when where
    whether which while who whom whose why will with within without would yes yet you your yours yourself
    yourselves""".split()
    # words that frame an answer rather than claim anything: "According to the context, the answer is ..."
    + "according answer based context passage question text".split()
)

# What a model says when the text does not hold the answer (matched on normalised text, as whole words).
ABSTENTION_PHRASES = (
    "i don t know", "i do not know", "i m not sure", "i am not sure", "not mentioned", "not stated", "not specified",
    "not provided", "not given", "no information", "not enough information", "insufficient information",
    "cannot be determined", "can t be determined", "cannot determine", "can t determine", "unable to determine",
    "cannot answer", "can t answer", "unable to answer", "cannot tell", "can t tell", "not in the context",
    "not in the text", "does not say", "doesn t say", "does not mention", "doesn t mention", "does not specify",
    "doesn t specify", "unanswerable", "no answer",
)  # fmt: skip
# A JSON field holding one of these (normalised) says "not found", as an extraction model would.
ABSTENTION_VALUES = frozenset({"", "unknown", "n a", "na", "none", "null", "not mentioned", "not specified", "not stated", "not given"})

QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<!\w)'([^']+)'(?!\w)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?![\w])")
WORD = re.compile(r"[^\W\d_]{2,}")


class Unit(NamedTuple):
    """One claim of an answer: ``kind`` is quoted, number, word (text answers) or value (a JSON field's)."""

    kind: str
    text: str  # normalised (normalise_text)


def stem(word: str) -> str:
    """A light stem, so one word's inflections match: ``uploads``, ``uploaded``, ``uploading`` -> ``upload``."""
    for suffix in ("ing", "ed", "s"):
        if len(word) >= 5 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def stems(text: str) -> list[str]:
    return [stem(word) for word in normalise_text(text).split()]


def json_answer(answer: str) -> dict | None:
    """The answer as a JSON object when it is one (prose or code fences around it allowed), else None."""
    return extract_json_object(answer) if "{" in answer else None


def field_values(value) -> list:
    """Every string and number inside a JSON value (lists and objects walked), booleans and nulls left out."""
    if isinstance(value, dict):
        return [inner for item in value.values() for inner in field_values(item)]
    if isinstance(value, list):
        return [inner for item in value for inner in field_values(item)]
    if isinstance(value, bool) or value is None:
        return []
    return [value]


def json_units(answer: dict, fields: list[str] | None) -> list[Unit]:
    """One unit per string or number value of the answer's fields (only ``fields`` when given); abstaining values are no claim."""
    chosen = [answer[name] for name in answer if fields is None or name in fields]
    texts = [normalise_text(str(value)) for value in field_values(chosen)]
    return [Unit("value", text) for text in texts if text not in ABSTENTION_VALUES]


def text_units(answer: str) -> list[Unit]:
    """Quoted strings, then numbers, then content words of a text answer, each once, in order of appearance."""
    units: dict[Unit, None] = {}
    for match in QUOTED.finditer(answer):
        units[Unit("quoted", normalise_text(next(group for group in match.groups() if group)))] = None
    unquoted = QUOTED.sub(" ", answer)
    for match in NUMBER.finditer(unquoted):
        units[Unit("number", normalise_text(match.group()))] = None
    for match in WORD.finditer(unquoted):
        word = match.group().casefold()
        if word not in STOPWORDS:
            units[Unit("word", normalise_text(word))] = None
    return [unit for unit in units if unit.text]


def content_units(answer: str, fields: list[str] | None = None) -> list[Unit]:
    """What ``answer`` claims (none when it abstains); ``fields`` limits a JSON answer to those fields."""
    if abstains(answer, fields):
        return []
    parsed = json_answer(answer)
    return json_units(parsed, fields) if parsed is not None else text_units(answer)


def is_supported(unit: Unit, source_stems: list[str]) -> bool:
    """Whether the unit's words appear in ``source_stems`` consecutively (a phrase), compared by stem."""
    words = [stem(word) for word in unit.text.split()]
    width = len(words)
    return any(source_stems[i : i + width] == words for i in range(len(source_stems) - width + 1))


def unsupported_units(units: list[Unit], source: str) -> list[Unit]:
    """The units of an answer that ``source`` does not support."""
    source_stems = stems(source)
    return [unit for unit in units if not is_supported(unit, source_stems)]


def says_it_cannot_answer(text: str) -> bool:
    """Whether the text holds one of ``ABSTENTION_PHRASES`` (normalised, whole words), or is nothing but an
    abstention value such as "Unknown." (a word that inside a sentence may be a claim: "an unknown error")."""
    normalised = normalise_text(text.replace("’", "'"))
    if normalised and normalised in ABSTENTION_VALUES:
        return True
    return any(f" {phrase} " in f" {normalised} " for phrase in ABSTENTION_PHRASES)


def abstains(answer: str, fields: list[str] | None = None) -> bool:
    """Whether the answer declines: an abstention phrase, or a JSON answer whose every field (every one
    of ``fields`` when given) is missing, null or an abstention value such as ``"unknown"``."""
    parsed = json_answer(answer)
    if parsed is None:
        return says_it_cannot_answer(answer)
    names = fields if fields is not None else list(parsed)
    values = [parsed.get(name) for name in names]
    return all(value is None or (isinstance(value, str) and normalise_text(value) in ABSTENTION_VALUES) for value in values)


def contains_phrase(source: str, phrase: str) -> bool:
    """Whether ``phrase``'s normalised words appear in ``source`` consecutively, as whole words."""
    words = normalise_text(phrase).split()
    return bool(words) and f" {' '.join(words)} " in f" {normalise_text(source)} "
