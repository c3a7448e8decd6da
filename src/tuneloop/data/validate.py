"""Validate data row by row: keep every usable row, report every other one with file:line.

Configuration mistakes that would drop every row (a mapped column the file lacks, a field the
format does not have) are raised before any row is read, listing the columns that do exist.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tuneloop.config import DataConfig
from tuneloop.data.formats import FORMATS, Normaliser, RowError, column_choices, format_fields, required_fields, template_fields
from tuneloop.data.load import BadRow, RawRow, columns_of, describe_columns, read_rows
from tuneloop.data.pii import PiiDetector, scrub_example, texts_to_scrub
from tuneloop.data.pii_cache import PiiCache
from tuneloop.data.schema import Example
from tuneloop.errors import DataError

LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, surrogates are only ever unpaired
SCRUB_BATCH = 256  # rows read, then scrubbed together (data.scrub_pii)


@dataclass(frozen=True)
class DroppedRow:
    source: str
    line: int
    field: str | None
    reason: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.reason}" if self.field else f"{self.where}: {self.reason}"


@dataclass
class DataReport:
    examples: list[Example] = field(default_factory=list)
    dropped: list[DroppedRow] = field(default_factory=list)
    rows_read: int = 0
    pii_scrubbed: bool = False  # data.scrub_pii was on
    pii: Counter = field(default_factory=Counter)  # placeholders put in the kept rows, by type
    pii_rows: list[str] = field(default_factory=list)  # file:line of every kept row that had personal data

    def dropped_by_reason(self) -> Counter:
        """Dropped rows counted by kind of problem, e.g. 'text: empty', 'duplicate'."""
        return Counter(reason_kind(row) for row in self.dropped)


def reason_kind(row: DroppedRow) -> str:
    """'malformed JSON: Expecting value (column 3)' -> 'malformed JSON', so counts group."""
    kind = row.reason.split(":", 1)[0].split(" of ", 1)[0].split(" (", 1)[0]
    return f"{row.field}: {kind}" if row.field else kind


def load_examples(cfg: DataConfig) -> DataReport:
    """Read every file of ``cfg.path``; bad rows are dropped and reported, duplicates too.

    With ``data.scrub_pii``, rows are scrubbed ``SCRUB_BATCH`` at a time (the NER model runs on their
    texts in batches), and what was found is cached per file (:mod:`tuneloop.data.pii_cache`).
    """
    normalise = normaliser_for(cfg)
    if not cfg.path:
        raise DataError("no data files given (data.path is empty)")
    for path in cfg.path:  # every file's columns first: fail before a long read, not after
        check_columns_exist(Path(path), cfg)
    report = DataReport(pii_scrubbed=cfg.scrub_pii)
    first_seen: dict[tuple, str] = {}
    for path in cfg.path:
        cache = PiiCache(path) if cfg.scrub_pii else None
        detector = cache.detector(allow=cfg.pii_allow) if cache else None
        for batch in batches(read_rows(path), SCRUB_BATCH):
            add_rows([normalise_row(row, normalise, cfg) for row in batch], detector, first_seen, report)
        if cache:
            cache.save()
    if not report.examples:
        raise DataError(no_usable_rows_message(cfg, report))
    return report


def add_rows(rows: list[Example | DroppedRow], detector: PiiDetector | None, first_seen: dict[tuple, str], report: DataReport) -> None:
    """A batch of rows into ``report``: the dropped ones with their reason, the others scrubbed (with a
    ``detector``) and kept unless they duplicate an earlier row."""
    if detector:
        detector.analyse_all([text for row in rows if isinstance(row, Example) for text in texts_to_scrub(row)])
    for row in rows:
        report.rows_read += 1
        if isinstance(row, DroppedRow):
            report.dropped.append(row)
            continue
        # scrubbed before the duplicate check: rows that differ only in personal data are duplicates
        example, found = scrub_example(row, detector) if detector else (row, Counter())
        if keep_unless_duplicate(example, first_seen, report) and found:
            report.pii.update(found)
            report.pii_rows.append(f"{example.source}:{example.line}")


def batches(rows: Iterable, size: int) -> Iterator[list]:
    """``rows`` in lists of ``size`` (the last one shorter), read as they are needed."""
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def normaliser_for(cfg: DataConfig) -> Normaliser:
    normalise = FORMATS.get(cfg.format)
    if normalise is None:
        raise DataError(f"unknown format {cfg.format!r}; choose one of: {', '.join(FORMATS)}")
    fields = format_fields(cfg.format)
    unknown = [name for name in cfg.columns if name not in fields]
    if unknown:
        raise DataError(
            f"data.columns: {unknown[0]!r} is not a field of format {cfg.format!r} (its fields: {', '.join(fields)}); "
            f"map field=column, e.g. {fields[0]}={unknown[0]}"
        )
    if (cfg.prompt_template or cfg.target_columns) and cfg.format != "prompt_completion":
        raise DataError(f"prompt_template and target_columns need format prompt_completion (format is {cfg.format!r})")
    return normalise


def normalise_row(row: RawRow | BadRow, normalise: Normaliser, cfg: DataConfig) -> Example | DroppedRow:
    """The row as an example of the format, or why it is dropped."""
    if isinstance(row, BadRow):
        return DroppedRow(row.source, row.line, row.field, row.reason)
    try:
        example = normalise(row.fields, cfg)
        check_text_is_clean(example)
    except RowError as err:
        return DroppedRow(row.source, row.line, err.field, err.reason)
    except RecursionError:  # a value nested deeper than the normaliser can walk
        return DroppedRow(row.source, row.line, None, "nested too deeply to read")
    return dataclasses.replace(example, source=row.source, line=row.line)


TEXT_FIELDS = ("text", "label", "prompt", "chosen", "rejected", "completion")


def check_text_is_clean(example: Example) -> None:
    """Raise :class:`RowError` for text a tokenizer cannot take or a model should not learn: a lone
    surrogate (not encodable as UTF-8; it crashes tokenizers) or a NUL character."""
    texts = [(name, getattr(example, name) or "") for name in TEXT_FIELDS]
    texts += [("messages", turn["content"]) for turn in example.messages]
    for name, text in texts:
        nul = text.find("\x00")
        if nul >= 0:
            raise RowError(name, f"NUL character at position {nul}")
        surrogate = LONE_SURROGATE.search(text)
        if surrogate:
            raise RowError(name, f"lone surrogate U+{ord(surrogate.group()):04X} at position {surrogate.start()} (not valid Unicode text)")


def keep_unless_duplicate(example: Example, first_seen: dict[tuple, str], report: DataReport) -> bool:
    """Same normalised input and same answer (and rejected answer or rating) as an earlier row: drop it,
    naming the first. Whether it was kept."""
    key = example.duplicate_key()
    if key in first_seen:
        report.dropped.append(DroppedRow(example.source, example.line, None, f"duplicate of {first_seen[key]}"))
        return False
    first_seen[key] = f"{example.source}:{example.line}"
    report.examples.append(example)
    return True


def no_usable_rows_message(cfg: DataConfig, report: DataReport) -> str:
    files = ", ".join(cfg.path)
    if report.rows_read == 0:
        return f"no usable rows in {files}: 0 rows read (the files hold no records)"
    reasons = "; ".join(str(row) for row in report.dropped[:3])
    return f"no usable rows in {files}: {report.rows_read} rows read, all dropped; first reasons: {reasons}"


def wanted_columns(cfg: DataConfig) -> list[tuple[tuple[str, ...], str]]:
    """(file columns, any one of which will do; why one is needed) for every column the config names or
    the format needs."""
    wanted = [((name,), f"data.columns {canonical}={name}") for canonical, name in cfg.columns.items()]
    wanted += [((name,), "used by prompt_template") for name in template_fields(cfg.prompt_template or "")]
    wanted += [((name,), "listed in target_columns") for name in cfg.target_columns or []]
    wanted += [
        (column_choices(cfg, name), f"needed by format {cfg.format!r}; map yours with columns {name}=COLUMN")
        for name in required_fields(cfg)
        if name not in cfg.columns
    ]
    return wanted


def check_columns_exist(path: Path, cfg: DataConfig) -> None:
    """A mapped, templated, target or required column missing from the file is a file-level error."""
    existing = columns_of(path)
    if not existing:  # an empty file, or no readable record: the row reports say why
        return
    problems = dict.fromkeys(
        f"column {' or '.join(map(repr, names))} does not exist ({why})"
        for names, why in wanted_columns(cfg)
        if not any(name in existing for name in names)
    )
    if problems:
        raise DataError(f"{path}: {'; '.join(problems)}; columns in the file: {describe_columns(existing)}")


def drop_too_long(report: DataReport, count_tokens: Callable[[Example], int], max_length: int, unit: str = "tokens") -> DataReport:
    """Move examples longer than ``max_length`` tokens (as ``count_tokens`` counts them, in ``unit``) to the dropped rows."""
    kept, shortest = [], None
    for example in report.examples:
        length = count_tokens(example)
        if length > max_length:
            report.dropped.append(DroppedRow(example.source, example.line, None, f"too long: {length} {unit} > max_length {max_length}"))
            shortest = length if shortest is None else min(shortest, length)
        else:
            kept.append(example)
    if not kept and report.examples:
        raise DataError(f"every usable row is longer than data.max_length={max_length} tokens (shortest: {shortest})")
    report.examples = kept
    return report


def count_words(example: Example) -> int:
    """Whitespace-separated words of everything an example trains on: a floor on its token count under any
    tokenizer that splits text at whitespace first (BPE and SentencePiece models do), for when none is loaded."""
    texts = [turn["content"] for turn in example.messages] or [example.prompt, example.text]
    texts += [example.chosen, example.rejected, example.completion, example.label or ""]
    return sum(len(text.split()) for text in texts)
