"""Company documents -> question/answer rows with provenance (``tuneloop data synth``).

Pipeline: read documents (a file or a folder of .txt/.md/.csv) -> passages that remember their
file and line range -> facts (a sentence and an answer span in it) -> questions written by a
causal LM -> filters (duplicates, unsupported answers, too short/long) -> a ``prompt_completion``
dataset, written atomically beside a manifest of counts.

Why answer-first: a 135M instruct model cannot be trusted to invent a correct answer, but it
can usually phrase a question for a given sentence and a given answer span. The answer is cut
out of the passage, so it is supported by construction; the model only writes the question,
and the filters throw out questions that leak the answer, are not questions, do not talk
about the passage, or that the model itself, asked them with the passage, answers with
something else (round-trip consistency: such a question is ambiguous or about another fact).
``model-qa`` lets the model write both (kept only when the answer's words
are found in the passage), and ``rules`` is a model-free fallback (template and cloze
questions) for when no model is at hand.

Every problem with the input is found before a model is loaded: missing files, unsupported
extensions, empty documents, and documents with nothing to ask about.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from tuneloop.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from tuneloop.data.load import BadRow, read_rows
from tuneloop.data.schema import normalise_text
from tuneloop.errors import ConfigError, DataError, TuneloopError

DOC_EXTENSIONS = (".txt", ".md", ".markdown", ".csv")
OUT_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
GENERATORS = ("model", "model-qa", "rules")
TOKENS_PER_WORD = 1.35  # rough BPE tokens per English word: sizes passages before any tokenizer loads

# A prompt of the dataset: the passage as context, then the question (set context=False for closed book).
PROMPT_TEMPLATE = "Context: {context}\n\nQuestion: {question}"

STOPWORDS = frozenset(
    "a an the and or of to in on at for from by with is are was were be been it its this that these those "
    "what which who whom whose when where why how do does did can could may must should will would has have "
    "had not no any all each every per than then there their they them our your you we i as if into".split()
)


# --- data model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One thing to ask about: ``answer`` is a span of ``sentence``; ``key`` is set for "key: value" lines."""

    sentence: str
    answer: str
    priority: int  # lower is a better answer (values of key: value lines, then numbers, then names)
    key: str | None = None


@dataclass(frozen=True)
class Passage:
    """A piece of one document, small enough to be a question's context, with where it came from."""

    passage_id: str
    source: str
    start_line: int
    end_line: int
    title: str  # heading path (markdown/text) or row subject (CSV)
    text: str  # what the model and the dataset see as the context
    sentences: tuple[str, ...]

    @property
    def lines(self) -> str:
        return f"{self.start_line}-{self.end_line}"


@dataclass(frozen=True)
class Candidate:
    """A proposed row before filtering; ``question`` is None when the model's output held none.

    ``check`` is the model's own answer to the question (the round trip), None when not asked.
    """

    passage: Passage
    question: str | None
    answer: str
    method: str
    check: str | None = None


@dataclass(frozen=True)
class FilterLimits:
    """Bounds a kept row must respect; defaults fit short factual QA."""

    min_question_words: int = 4
    max_question_words: int = 40
    min_answer_chars: int = 1
    max_answer_words: int = 16
    min_roundtrip: float = 0.5  # token F1 of the answer and the model's own answer (question words removed)


@dataclass(frozen=True)
class SynthSettings:
    model: str = "smollm2-135m-instruct"
    generator: str = "model"
    per_passage: int = 3
    max_new_tokens: int = 40
    min_support: float = 0.8
    seed: int = 0
    limit: int | None = None  # use only the first N passages
    batch_size: int = 16
    passage_tokens: int = 192
    context: bool = True  # put the passage in each prompt (open book)
    roundtrip: bool = True  # model generators: keep a question only when the model, asked it, gives the answer back
    attempts: int = 2  # model generator: tries per fact (each with the worked examples in another order) until one passes
    limits: FilterLimits = field(default_factory=FilterLimits)


@dataclass
class SynthResult:
    rows: list[dict]
    manifest: dict
    out: Path
    manifest_path: Path


# A generate function: (chat conversations, token budget, what it is doing) in, one reply per conversation out.
GenerateFn = Callable[[list[list[dict]], int, str], list[str]]
ROUNDTRIP_NEW_TOKENS = 32  # the base model answers in a sentence ("The ... is 14 days."); this fits one


# --- reading documents ---------------------------------------------------------------------


def collect_documents(paths: list[str | Path]) -> list[Path]:
    """The document files named or found (recursively) in the named folders, in a stable order.

    A file named explicitly must have a supported extension; in a folder, other files are
    skipped (a folder of company documents often holds a PDF or an image) and reported.
    """
    if not paths:
        raise DataError("no documents given: name files or folders of .txt, .md or .csv documents")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += folder_documents(path)
        elif path.is_file():
            found.append(checked_document(path))
        else:
            raise DataError(f"document not found: {path}")
    return list(dict.fromkeys(found))


def checked_document(path: Path) -> Path:
    if path.suffix.lower() not in DOC_EXTENSIONS:
        raise DataError(f"{path}: unsupported document type {path.suffix or '(none)'!r}; supported: {', '.join(DOC_EXTENSIONS)}")
    return path


def folder_documents(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    documents = [p for p in files if p.suffix.lower() in DOC_EXTENSIONS]
    skipped = [p for p in files if p.suffix.lower() not in DOC_EXTENSIONS]
    if skipped:
        names = ", ".join(str(p) for p in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(f"skipped {len(skipped)} file(s) of unsupported type in {folder}: {names}", file=sys.stderr)
    if not documents:
        raise DataError(f"{folder}: no documents in this folder (looked for {', '.join(DOC_EXTENSIONS)})")
    return documents


def read_passages(path: Path, passage_tokens: int = 192) -> list[Passage]:
    """Passages of one document; DataError naming the file when it is empty or unreadable."""
    try:
        passages = csv_passages(path) if path.suffix.lower() == ".csv" else text_passages(path, passage_tokens)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the file with UTF-8 encoding") from None
    if not passages:
        raise DataError(f"{path}: the document is empty (no text to make questions from)")
    return passages


def estimate_tokens(text: str) -> int:
    return round(len(text.split()) * TOKENS_PER_WORD)


@dataclass(frozen=True)
class Block:
    """Consecutive non-blank lines; ``heading`` is its level (0: body text)."""

    start: int
    end: int
    lines: tuple[str, ...]
    heading: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def text_blocks(lines: list[str], markdown: bool) -> list[Block]:
    """Blank-line-separated blocks; a markdown heading is always a block of its own."""
    blocks: list[Block] = []
    current: list[tuple[int, str]] = []

    def flush() -> None:
        if current:
            blocks.append(Block(current[0][0], current[-1][0], tuple(text for _, text in current)))
            current.clear()

    for number, line in enumerate(lines, start=1):
        level = heading_level(line) if markdown else 0
        if level:
            flush()
            blocks.append(Block(number, number, (line.lstrip("#").strip(),), level))
        elif line.strip():
            current.append((number, line.rstrip()))
        else:
            flush()
    flush()
    return blocks if markdown else plain_text_headings(blocks)


def heading_level(line: str) -> int:
    match = re.match(r"^(#{1,6})\s+\S", line)
    return len(match.group(1)) if match else 0


def plain_text_headings(blocks: list[Block]) -> list[Block]:
    """In a .txt file, a short first line without a final full stop is read as the block's heading.

    The first block of the file, when it is one such line, is the document's title (level 1).
    """
    result: list[Block] = []
    for index, block in enumerate(blocks):
        first = block.lines[0].strip()
        if not looks_like_heading(first):
            result.append(block)
        elif len(block.lines) == 1:
            result.append(replace(block, heading=1 if index == 0 else 2))
        else:
            result.append(Block(block.start, block.start, (first,), 2))
            result.append(Block(block.start + 1, block.end, block.lines[1:]))
    return result


def looks_like_heading(line: str) -> bool:
    return 0 < len(line.split()) <= 10 and not line.endswith((".", ",", ";", ":"))


def text_passages(path: Path, passage_tokens: int) -> list[Passage]:
    """Sections (text under one heading) cut into passages of about ``passage_tokens`` tokens.

    Each passage's text starts with its heading path ("Refund policy > Annual plans"), so a
    question about it has the context a reader of the document had; its line range covers
    only the lines it was cut from.
    """
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    blocks = text_blocks(lines, markdown=path.suffix.lower() in (".md", ".markdown"))
    passages: list[Passage] = []
    for title, body in sections(blocks):
        for group in pack_blocks(body, passage_tokens):
            passages.append(make_passage(path, len(passages) + 1, title, group))
    return passages


def sections(blocks: list[Block]) -> Iterator[tuple[str, list[Block]]]:
    """(heading path, body blocks) for every run of body text, in document order."""
    headings: dict[int, str] = {}
    body: list[Block] = []
    for block in blocks:
        if block.heading:
            if body:
                yield heading_path(headings), body
                body = []
            headings = {level: text for level, text in headings.items() if level < block.heading}
            headings[block.heading] = clean_markup(block.text)
        else:
            body.append(block)
    if body:
        yield heading_path(headings), body


def heading_path(headings: dict[int, str]) -> str:
    return " > ".join(headings[level] for level in sorted(headings))


def pack_blocks(blocks: list[Block], passage_tokens: int) -> list[list[Block]]:
    """Consecutive blocks merged while they fit ``passage_tokens``; a longer block is cut at sentences."""
    groups: list[list[Block]] = []
    size = 0
    for block in (piece for block in blocks for piece in split_long_block(block, passage_tokens)):
        tokens = estimate_tokens(block.text)
        if groups and size + tokens <= passage_tokens:
            groups[-1].append(block)
            size += tokens
        else:
            groups.append([block])
            size = tokens
    return groups


def split_long_block(block: Block, passage_tokens: int) -> list[Block]:
    """A block over the target, cut between sentences (every piece keeps the block's line range)."""
    if estimate_tokens(block.text) <= passage_tokens:
        return [block]
    pieces: list[list[str]] = [[]]
    for sentence in split_sentences(block.text):
        if pieces[-1] and estimate_tokens(" ".join(pieces[-1] + [sentence])) > passage_tokens:
            pieces.append([])
        pieces[-1].append(sentence)
    return [Block(block.start, block.end, (" ".join(piece),)) for piece in pieces]


def make_passage(path: Path, number: int, title: str, blocks: list[Block]) -> Passage:
    body = [clean_markup(line) for block in blocks for line in block.lines]
    sentences = tuple(s for line in body for s in split_sentences(line))
    text = "\n".join(body)
    return Passage(
        passage_id=f"{path}#{number}",
        source=str(path),
        start_line=blocks[0].start,
        end_line=blocks[-1].end,
        title=title,
        text=f"{title}\n\n{text}" if title else text,
        sentences=sentences,
    )


def clean_markup(line: str) -> str:
    """Markdown emphasis and code marks removed; list bullets kept (they read as lists)."""
    line = re.sub(r"(\*\*|__|`)", "", line)
    line = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", line)  # [text](link) -> text
    return line.strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of a line of text; list bullets are dropped from the sentence itself."""
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", text.strip())
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", text)
    return [part.strip() for part in parts if part.strip()]


def csv_passages(path: Path) -> list[Passage]:
    """One passage per CSV row: "column: value" lines under the row's subject (its leading column(s))."""
    rows = []
    for row in read_rows(path):
        if isinstance(row, BadRow):
            raise DataError(f"{path}:{row.line}: {row.reason}")
        rows.append(row)
    if not rows:
        return []
    columns = list(rows[0].fields)
    subject_columns = csv_subject_columns(columns, [row.fields for row in rows])
    title = path.stem.replace("_", " ").replace("-", " ").strip().capitalize()
    passages = []
    for number, row in enumerate(rows, start=1):
        subject = " ".join(row.fields[c].strip() for c in subject_columns)
        facts = [(c, row.fields[c].strip()) for c in columns if c and row.fields[c].strip()]
        body = "\n".join(f"{column}: {value}" for column, value in facts)
        sentences = tuple(f"{subject}, {column}: {value}" for column, value in facts if column not in subject_columns)
        passages.append(
            Passage(f"{path}#{number}", str(path), row.line, row.line, f"{title}: {subject}", f"{title}: {subject}\n\n{body}", sentences)
        )
    return passages


def csv_subject_columns(columns: list[str], rows: list[dict]) -> list[str]:
    """The fewest leading columns whose values name each row uniquely (at most three)."""
    for width in range(1, min(3, len(columns)) + 1):
        keys = [tuple(row[c].strip() for c in columns[:width]) for row in rows]
        if len(set(keys)) == len(keys):
            return columns[:width]
    return columns[: min(3, len(columns))]


# --- facts: what to ask about --------------------------------------------------------------

KEY_VALUE = re.compile(r"^(?:(?P<subject>[^:]{1,80}), )?(?P<key>[A-Za-z][\w /&()'-]{0,40}):\s+(?P<value>\S.*)$")
UNITS = (
    r"seconds?|minutes?|hours?|days?|weeks?|months?|years?|characters?|languages?|charts?|versions?|locations?|"
    r"regions?|desks?|employees?|users?|seats?|people|km|GB|TB|MB|euros?|dollars?|times|floor"
)
NAME = re.compile(r"\b[A-Z][\w'-]+(?:\s+(?:of\s+)?[A-Z][\w'-]+){1,4}\b")  # Priya Raman, Head of Billing
CAPITALISED_WORD = re.compile(r"\b[A-Z][a-z][\w'-]+\b")  # Singapore, Wednesday
# (priority, pattern): earlier patterns make better answers; a span is taken once, by the first pattern that finds it.
ANSWER_PATTERNS: tuple[tuple[int, re.Pattern], ...] = (
    (1, re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (1, re.compile(r"\b(?:[a-z0-9-]+\.)+(?:example|com|org|net|io)\b")),
    (1, re.compile(r"\+\d[\d ]{6,}\d")),
    (2, re.compile(r"\b\d{1,2}:\d{2}(?:\s*(?:to|and|-)\s*\d{1,2}:\d{2})?(?:\s*(?:CET|UTC|CEST|GMT))?")),
    (2, re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d+)?")),
    (2, re.compile(r"\b\d+(?:\.\d+)?\s?%")),
    (2, re.compile(rf"\b\d[\d,.]*(?:st|nd|rd|th)?(?:\s+(?:business|calendar|working|full|paid|public))?\s+(?:{UNITS})\b")),
    (3, re.compile(r"\b(?:AES|TLS|ISO|SOC)[- ]?\d[\w.]*(?:\s+Type\s+[IV]+)?")),
    (3, re.compile(r"\b(?:\d[\d,.]*\d|\d(?:st|nd|rd|th))\b")),  # a lone digit ("Severity 1") is no answer
    (4, NAME),
    (5, CAPITALISED_WORD),
)


def sentence_facts(sentence: str, title: str = "", common: frozenset[str] = frozenset()) -> list[Fact]:
    """Answer spans of one sentence, best first; a "key: value" line yields its value.

    A span that already appears in the passage's heading, a capitalised word that only starts
    the sentence, or a name in ``common`` (found all over the documents, like the company's
    own name) makes a poor answer and is skipped.
    """
    match = key_value(sentence)
    if match:
        return [Fact(sentence, match.group("value").strip().rstrip("."), 0, match.group("key").strip())]
    taken: list[tuple[int, int]] = []
    facts = []
    for priority, pattern in ANSWER_PATTERNS:
        for found in pattern.finditer(sentence):
            start, end = found.span()
            span = found.group().strip().rstrip(".,")
            if any(start < b and a < end for a, b in taken) or not good_span(span, start, priority, title, common):
                continue
            taken.append((start, end))
            facts.append(Fact(sentence, span, priority))
    return sorted(facts, key=lambda fact: fact.priority)


def key_value(sentence: str) -> re.Match | None:
    """A "key: value" line (CSV cell, list item); a sentence with a colon in it is not one."""
    match = KEY_VALUE.match(sentence)
    if match and len(match.group("key").split()) <= 5 and not sentence.endswith("."):
        return match
    return None


def good_span(span: str, start: int, priority: int, title: str, common: frozenset[str] = frozenset()) -> bool:
    if not span or normalise_text(span) in normalise_text(title):
        return False
    if priority >= 4 and normalise_text(span) in common:
        return False
    if priority >= 4 and start == 0 and len(span.split()) == 1:
        return False  # a capitalised first word is just the start of the sentence
    return not (priority >= 4 and span.casefold() in STOPWORDS)


def common_names(passages: list[Passage], share: float = 0.2) -> frozenset[str]:
    """Capitalised names found in more than ``share`` of the passages (and at least 3): the subject, not a fact."""
    counts: Counter = Counter()
    for passage in passages:
        names = {m.group() for pattern in (NAME, CAPITALISED_WORD) for m in pattern.finditer(passage.text)}
        counts.update({normalise_text(name) for name in names})
    threshold = max(3, share * len(passages))
    return frozenset(name for name, count in counts.items() if count > threshold)


def passage_facts(passage: Passage, per_passage: int, rng: random.Random, common: frozenset[str] = frozenset()) -> list[Fact]:
    """Up to ``per_passage`` facts, one per sentence first, the best-ranked sentences first.

    Equal ranks are ordered by ``rng`` so a different seed asks about other sentences.
    """
    per_sentence = [sentence_facts(sentence, passage.title, common) for sentence in passage.sentences]
    per_sentence = [facts for facts in per_sentence if facts]
    order = sorted(range(len(per_sentence)), key=lambda i: (per_sentence[i][0].priority, rng.random()))
    chosen: list[Fact] = []
    for depth in range(max((len(f) for f in per_sentence), default=0)):
        for index in order:
            if len(chosen) < per_passage and depth < len(per_sentence[index]):
                chosen.append(per_sentence[index][depth])
    return chosen


# --- generation: prompts and parsing -------------------------------------------------------

QUESTION_SYSTEM = "You write the question that a sentence answers. Reply with one question only."
QUESTION_SHOTS = (
    ("The museum opens at 9 am on weekdays.", "9 am", "When does the museum open on weekdays?"),
    ("Maria Lopez manages the Lisbon warehouse.", "Maria Lopez", "Who manages the Lisbon warehouse?"),
    ("Lisbon warehouse, opening hours: 8 am to 6 pm", "8 am to 6 pm", "What are the opening hours of the Lisbon warehouse?"),
    ("Orders above 50 euros ship for free.", "50 euros", "Above what amount do orders ship for free?"),
)
ANSWER_SYSTEM = "Answer with the exact words from the context, nothing else."
QA_SYSTEM = "You write one question about a text and its short answer, copied word for word from the text."
QA_SHOT = (
    "Shipping policy\n\nOrders above 50 euros ship for free. Parcels leave the Lisbon warehouse within 2 days.",
    "How soon do parcels leave the Lisbon warehouse?",
    "within 2 days",
)
# Words peculiar to the worked examples: a question holding one its passage lacks copied an example.
SHOT_WORDS = frozenset({"museum", "maria", "lopez", "lisbon", "warehouse", "parcels"})


def question_messages(fact: Fact, attempt: int = 0) -> list[dict]:
    """Few-shot chat asking for the question whose answer is ``fact.answer`` (small models need the examples).

    Each ``attempt`` rotates the examples: under greedy decoding that is what makes a retry
    write a different question.
    """
    shift = attempt % len(QUESTION_SHOTS)
    messages = [{"role": "system", "content": QUESTION_SYSTEM}]
    for sentence, answer, question in QUESTION_SHOTS[shift:] + QUESTION_SHOTS[:shift]:
        messages.append({"role": "user", "content": f"Sentence: {sentence}\nAnswer: {answer}"})
        messages.append({"role": "assistant", "content": question})
    messages.append({"role": "user", "content": f"Sentence: {fact.sentence}\nAnswer: {fact.answer}"})
    return messages


def qa_messages(passage: Passage) -> list[dict]:
    text, question, answer = QA_SHOT
    return [
        {"role": "system", "content": QA_SYSTEM},
        {"role": "user", "content": f"Text: {text}"},
        {"role": "assistant", "content": f"Question: {question}\nAnswer: {answer}"},
        {"role": "user", "content": f"Text: {passage.text}"},
    ]


def parse_question(reply: str) -> str | None:
    """The first question in a model reply ("Question:" prefixes and quotes removed), or None."""
    for line in reply.splitlines():
        line = re.sub(r"^\s*(?:Q(?:uestion)?\s*\d*\s*[:.)-])\s*", "", line.strip(), flags=re.IGNORECASE).strip(" \"'*")
        if "?" in line:
            return line[: line.index("?") + 1].strip(" \"'")
    return None


def parse_question_answer(reply: str) -> tuple[str | None, str]:
    """("Question: ...", "Answer: ...") from a model reply; (None, "") when the reply has no question."""
    question = re.search(r"Question\s*:\s*(.+)", reply, flags=re.IGNORECASE)
    answer = re.search(r"Answer\s*:\s*(.+)", reply, flags=re.IGNORECASE)
    parsed = parse_question(question.group(1)) if question else None
    return parsed, answer.group(1).strip().strip("\"'").rstrip(".") if answer else ""


# --- the model-free fallback ---------------------------------------------------------------


def rules_question(fact: Fact) -> tuple[str, str]:
    """(question, method): a template for "key: value" facts, a cloze of the sentence otherwise."""
    match = key_value(fact.sentence)
    if fact.key and match:
        subject = match.group("subject")
        return (f"What is the {fact.key} of {subject}?" if subject else f"What is the {fact.key}?"), "rules:key-value"
    cloze = fact.sentence.replace(fact.answer, "____", 1)
    return f"Fill in the blank: {cloze.rstrip('.')}?", "rules:cloze"


# --- filters -------------------------------------------------------------------------------


def support_score(answer: str, passage_text: str) -> float:
    """How much of the answer the passage states: 1.0 when its words appear in it in order, else the share found."""
    answer_tokens = normalise_text(answer).split()
    if not answer_tokens:
        return 0.0
    passage = normalise_text(passage_text)
    if f" {' '.join(answer_tokens)} " in f" {passage} ":
        return 1.0
    words = set(passage.split())
    return sum(token in words for token in answer_tokens) / len(answer_tokens)


def content_words(text: str) -> set[str]:
    return {word for word in normalise_text(text).split() if word not in STOPWORDS and len(word) > 2}


def roundtrip_score(answer: str, reply: str, question: str) -> float:
    """Token F1 of ``answer`` and the model's ``reply`` once the words it echoed from the question are removed.

    Small models answer "The price of Beacon Team is $4.": after dropping the echo that is "4",
    a match. A reply that recites the whole passage also contains the answer, but scores low,
    because most of what is left is not the answer. Numbers are the fact itself: a reply
    missing one of the answer's numbers scores 0 ("30 days" is not "14 days").
    """
    answer_tokens = [w for w in normalise_text(answer).split() if w not in STOPWORDS] or normalise_text(answer).split()
    echoed = set(normalise_text(question).split()) - set(answer_tokens)
    reply_tokens = [w for w in normalise_text(reply).split() if w not in echoed and w not in STOPWORDS]
    if any(any(c.isdigit() for c in w) and w not in reply_tokens for w in answer_tokens):
        return 0.0
    common = sum(min(answer_tokens.count(w), reply_tokens.count(w)) for w in set(answer_tokens))
    if not common:
        return 0.0
    precision, recall = common / len(reply_tokens), common / len(answer_tokens)
    return 2 * precision * recall / (precision + recall)


def answer_given_away(answer: str, question: str) -> bool:
    """The question holds the answer, or one of its numbers ("... a 90-day key?" for "90 days")."""
    answer_tokens, question_tokens = normalise_text(answer).split(), normalise_text(question).split()
    if f" {' '.join(answer_tokens)} " in f" {' '.join(question_tokens)} ":
        return True
    return any(any(c.isdigit() for c in token) and token in question_tokens for token in answer_tokens)


def borrowed_from_shots(question: str, passage_text: str) -> bool:
    """Whether the question took a word from the prompt's worked examples that its passage lacks (e.g. "Lisbon")."""
    return bool((content_words(question) & SHOT_WORDS) - content_words(passage_text))


def filter_reason(candidate: Candidate, limits: FilterLimits, min_support: float) -> str | None:
    """Why a candidate is dropped (None: kept); the first failing check names the reason."""
    question, answer = candidate.question, candidate.answer.strip()
    if not question:
        return "no_question"
    words = len(question.split())
    if words < limits.min_question_words:
        return "question_too_short"
    if words > limits.max_question_words:
        return "question_too_long"
    if len(answer) < limits.min_answer_chars or not normalise_text(answer):
        return "answer_too_short"
    if len(answer.split()) > limits.max_answer_words:
        return "answer_too_long"
    if support_score(answer, candidate.passage.text) < min_support:
        return "unsupported_answer"
    if answer_given_away(answer, question):
        return "answer_in_question"
    if not content_words(question) & content_words(candidate.passage.text) or borrowed_from_shots(question, candidate.passage.text):
        return "question_off_passage"
    if candidate.check is not None and roundtrip_score(answer, candidate.check, question) < limits.min_roundtrip:
        return "roundtrip_mismatch"
    return None


def filter_candidates(candidates: list[Candidate], limits: FilterLimits, min_support: float) -> tuple[list[Candidate], Counter]:
    """Kept candidates in input order, and the dropped count per reason (``duplicate_question`` last)."""
    kept: list[Candidate] = []
    dropped: Counter = Counter()
    seen: set[str] = set()
    for candidate in candidates:
        reason = filter_reason(candidate, limits, min_support)
        if reason is None and normalise_text(candidate.question) in seen:
            reason = "duplicate_question"
        if reason:
            dropped[reason] += 1
            continue
        seen.add(normalise_text(candidate.question))
        kept.append(candidate)
    return kept, dropped


# --- the pipeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What will be generated: one request (and one chat) per fact, or per passage for ``model-qa``."""

    requests: list[tuple[Passage, Fact | None]]  # fact is None for model-qa (the model picks the answer)


def plan_requests(passages: list[Passage], settings: SynthSettings) -> Plan:
    """The facts to ask about; DataError when the documents give nothing, before any model loads."""
    rng = random.Random(settings.seed)
    if settings.generator == "model-qa":
        requests = [(passage, None) for passage in passages]  # greedy decoding: one reply per passage
    else:
        common = common_names(passages)
        requests = [(passage, fact) for passage in passages for fact in passage_facts(passage, settings.per_passage, rng, common)]
    if not requests:
        raise DataError(
            f"the {len(passages)} passage(s) hold nothing to ask about (no numbers, dates, names or 'key: value' "
            "lines), so no rows would be made; add documents with concrete facts"
        )
    return Plan(requests)


def candidates_from_replies(requests: list[tuple[Passage, Fact | None]], replies: list[str], settings: SynthSettings) -> list[Candidate]:
    method = f"{settings.generator}:{settings.model}"
    candidates = []
    for (passage, fact), reply in zip(requests, replies):
        if fact is None:
            question, answer = parse_question_answer(reply)
            candidates.append(Candidate(passage, question, answer, method))
        else:
            candidates.append(Candidate(passage, parse_question(reply), fact.answer, method))
    return candidates


def rules_candidates(plan: Plan) -> list[Candidate]:
    candidates = []
    for passage, fact in plan.requests:
        question, method = rules_question(fact)
        candidates.append(Candidate(passage, question, fact.answer, method))
    return candidates


def generate_candidates(plan: Plan, settings: SynthSettings, generate: GenerateFn | None) -> list[Candidate]:
    """Candidates from the rules, or from the model's replies (``generate`` replaces the model in tests)."""
    if settings.generator == "rules":
        return rules_candidates(plan)
    if generate is None:
        raise ConfigError(f"generator {settings.generator!r} needs a model to generate with (see tuneloop.text.generate.chat_generator)")
    attempts = settings.attempts if settings.generator == "model" else 1  # model-qa's prompt has no variants
    candidates: list[Candidate] = []
    pending = list(plan.requests)
    for attempt in range(attempts):
        batch = attempt_candidates(pending, attempt, settings, generate)
        candidates += batch
        pending = [request for request, c in zip(pending, batch) if filter_reason(c, settings.limits, settings.min_support)]
        if not pending:
            break
    return candidates


def attempt_candidates(requests: list[tuple[Passage, Fact | None]], attempt: int, settings: SynthSettings, generate: GenerateFn) -> list[Candidate]:
    """One candidate per request from one round of generation (and its round trip)."""
    chats = [qa_messages(passage) if fact is None else question_messages(fact, attempt) for passage, fact in requests]
    label = "writing questions" + (f" (attempt {attempt + 1} for {len(requests)} facts)" if attempt else "")
    candidates = candidates_from_replies(requests, checked_replies(generate, chats, settings.max_new_tokens, label), settings)
    return roundtrip_checked(candidates, settings, generate) if settings.roundtrip else candidates


def checked_replies(generate: GenerateFn, chats: list[list[dict]], max_new_tokens: int, label: str) -> list[str]:
    replies = generate(chats, max_new_tokens, label)
    if len(replies) != len(chats):
        raise TuneloopError(f"the generator returned {len(replies)} replies for {len(chats)} prompts")
    return replies


def answer_messages(candidate: Candidate) -> list[dict]:
    """The question asked the way the dataset will ask it: passage as context, short-answer instruction."""
    prompt = PROMPT_TEMPLATE.format(context=candidate.passage.text, question=candidate.question)
    return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": prompt}]


def roundtrip_checked(candidates: list[Candidate], settings: SynthSettings, generate: GenerateFn) -> list[Candidate]:
    """Ask the model its own questions (round-trip consistency) and keep its answers as ``check``.

    A question the model answers with something else is ambiguous or about another fact (a
    sentence naming several uptimes, asked about the wrong product). Only candidates that pass
    the cheap filters are asked, so no time goes to rows that would be dropped anyway.
    """
    worth_asking = [i for i, c in enumerate(candidates) if filter_reason(c, settings.limits, settings.min_support) is None]
    if not worth_asking:
        return candidates
    chats = [answer_messages(candidates[i]) for i in worth_asking]
    replies = checked_replies(generate, chats, ROUNDTRIP_NEW_TOKENS, "answering its own questions")
    checked = list(candidates)
    for index, reply in zip(worth_asking, replies):
        checked[index] = replace(candidates[index], check=reply)
    return checked


def row_of(candidate: Candidate, context: bool) -> dict:
    passage = candidate.passage
    prompt = PROMPT_TEMPLATE.format(context=passage.text, question=candidate.question) if context else candidate.question
    return {
        "prompt": prompt,
        "completion": candidate.answer.strip(),
        "source": passage.source,
        "lines": passage.lines,
        "passage_id": passage.passage_id,
        "method": candidate.method,
    }


def check_settings(settings: SynthSettings, out: Path) -> None:
    if settings.generator not in GENERATORS:
        raise TuneloopError(f"--generator must be one of {', '.join(GENERATORS)}, got {settings.generator!r}")
    if out.suffix.lower() not in OUT_EXTENSIONS:
        raise TuneloopError(f"--out {out}: unsupported dataset type {out.suffix or '(none)'!r}; use one of {', '.join(OUT_EXTENSIONS)}")
    if out.is_dir():
        raise TuneloopError(f"--out {out} is a folder; name the dataset file, e.g. {out / 'synth.jsonl'}")
    if settings.per_passage < 1:
        raise TuneloopError(f"--per-passage must be at least 1, got {settings.per_passage}")
    if not 0.0 <= settings.min_support <= 1.0:
        raise TuneloopError(f"--min-support must be between 0 and 1, got {settings.min_support}")
    if settings.limit is not None and settings.limit < 1:
        raise TuneloopError(f"--limit must be at least 1, got {settings.limit}")
    if min(settings.max_new_tokens, settings.batch_size, settings.attempts) < 1 or settings.passage_tokens < 16:
        raise TuneloopError("--max-new-tokens, --batch-size and --attempts must be at least 1, --passage-tokens at least 16")


def load_passages(paths: list[str | Path], settings: SynthSettings) -> tuple[list[Path], list[Passage]]:
    documents = collect_documents(paths)
    passages = [passage for path in documents for passage in read_passages(path, settings.passage_tokens)]
    return documents, passages[: settings.limit] if settings.limit else passages


def synthesize(paths: list[str | Path], out: str | Path, settings: SynthSettings = SynthSettings(), generate: GenerateFn | None = None) -> SynthResult:
    """Documents -> filtered question/answer rows written to ``out``; nothing is written when no row survives.

    >>> synthesize(["examples/company_docs"], "runs/synth.jsonl")  # doctest: +SKIP
    """
    out = Path(out)
    check_settings(settings, out)
    started = time.monotonic()
    documents, passages = load_passages(paths, settings)
    plan = plan_requests(passages, settings)
    candidates = generate_candidates(plan, settings, generate)
    kept, dropped = filter_candidates(candidates, settings.limits, settings.min_support)
    if not kept:
        reasons = ", ".join(f"{reason} {count}" for reason, count in dropped.most_common())
        raise DataError(f"no rows survived the filters ({len(candidates)} candidates: {reasons}); nothing written to {out}")
    rows = [row_of(candidate, settings.context) for candidate in kept]
    manifest = synth_manifest(documents, passages, candidates, rows, dropped, settings, out, time.monotonic() - started)
    write_rows(rows, out)
    manifest_path = write_json_atomic(manifest_path_for(out), manifest)
    return SynthResult(rows, manifest, out, manifest_path)


def synth_manifest(documents, passages, candidates, rows, dropped: Counter, settings: SynthSettings, out: Path, seconds: float) -> dict:
    """Counts and settings of one synthesis, so a dataset can be traced and remade."""
    return {
        "out": str(out),
        "format": "prompt_completion",
        "documents": [{"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in documents],
        "passages": len(passages),
        "passages_with_rows": len({row["passage_id"] for row in rows}),
        "candidates": len(candidates),
        "rows": len(rows),
        "dropped": sum(dropped.values()),
        "dropped_by_reason": dict(dropped.most_common()),
        "rows_by_method": dict(Counter(row["method"] for row in rows)),
        "settings": {
            "model": settings.model if settings.generator != "rules" else None,
            "generator": settings.generator,
            "per_passage": settings.per_passage,
            "max_new_tokens": settings.max_new_tokens,
            "min_support": settings.min_support,
            "seed": settings.seed,
            "limit": settings.limit,
            "passage_tokens": settings.passage_tokens,
            "context": settings.context,
            "roundtrip": settings.roundtrip and settings.generator != "rules",
            "attempts": settings.attempts if settings.generator == "model" else 1,
            "prompt_template": PROMPT_TEMPLATE if settings.context else "{question}",
            "limits": vars(settings.limits),
        },
        "seconds": round(seconds, 2),
    }


def manifest_path_for(out: Path) -> Path:
    return out.with_name(f"{out.stem}.manifest.json")


def write_rows(rows: list[dict], out: Path) -> Path:
    """The rows in the format ``out``'s extension names, written atomically."""
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        return write_text_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    if suffix == ".json":
        return write_json_atomic(out, rows)
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return write_text_atomic(out, buffer.getvalue())
    return write_bytes_atomic(out, parquet_bytes(rows))


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()
