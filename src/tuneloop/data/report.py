"""What ``tuneloop data check`` prints: usable rows, dropped rows by reason, lengths, labels, personal data."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Callable

from tuneloop.data.pii import PII_TYPES
from tuneloop.data.schema import Example
from tuneloop.data.validate import reason_kind


def summarise_data(report, splits=None, count_tokens: Callable[[Example], int] | None = None) -> dict:
    """A JSON-ready summary of a :class:`~tuneloop.data.validate.DataReport` (and its split)."""
    where: dict[str, list[str]] = defaultdict(list)
    for row in report.dropped:
        where[reason_kind(row)].append(row.where)
    summary = {
        "rows_read": report.rows_read,
        "rows_kept": len(report.examples),
        "rows_dropped": len(report.dropped),
        "dropped_by_reason": dict(report.dropped_by_reason().most_common()),
        "dropped_where": dict(where),
        "dropped": [str(row) for row in report.dropped],
    }
    if count_tokens is not None and report.examples:
        summary["token_lengths"] = length_percentiles([count_tokens(e) for e in report.examples])
    labels = Counter(e.label for e in report.examples if e.label is not None)
    if labels:
        summary["labels"] = dict(labels.most_common())
    ratings = Counter("good" if e.good else "bad" for e in report.examples if e.good is not None)
    if ratings:
        summary["ratings"] = {rating: ratings[rating] for rating in ("good", "bad")}
    if any(e.chosen or e.completion for e in report.examples):  # pairs, ratings: a prompt's rows share a split
        summary["prompts"] = len({e.leakage_key() for e in report.examples})
    if report.pii_scrubbed:
        summary["pii"] = pii_record(report)
        summary["pii_examples"] = pii_examples(report)
    if splits is not None:
        summary["split_sizes"] = splits.sizes()
    return summary


def pii_record(report, max_listed: int = 50) -> dict:
    """data.json's ``pii`` entry: placeholders put in per type, and which rows had personal data."""
    return {
        "placeholders": {kind: report.pii[kind] for kind in PII_TYPES},
        "rows_with_pii": len(report.pii_rows),
        "rows_where": report.pii_rows[:max_listed],
    }


def pii_examples(report, shown: int = 3, width: int = 240) -> list[dict]:
    """The first few scrubbed rows as they will train (``file:line`` and the text, shortened)."""
    where = set(report.pii_rows[:shown])
    rows = [e for e in report.examples if f"{e.source}:{e.line}" in where]
    return [{"where": f"{e.source}:{e.line}", "text": shortened(f"{e.input_text}\n-> {e.target_text}", width)} for e in rows]


def shortened(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def length_percentiles(lengths: list[int]) -> dict[str, int]:
    """Nearest-rank p50 and p95, and the maximum."""
    ordered = sorted(lengths)
    rank = lambda q: ordered[max(math.ceil(q * len(ordered)) - 1, 0)]  # noqa: E731
    return {"p50": rank(0.5), "p95": rank(0.95), "max": ordered[-1]}


def print_data_summary(summary: dict, console, max_rows: int = 30) -> None:
    """Counts, then each dropped row as ``file:line: field: reason`` (one per line), then tables."""
    console.print(f"rows read {summary['rows_read']}, kept {summary['rows_kept']}, dropped {len(summary['dropped'])}")
    if summary["dropped"]:
        console.print(counts_table("dropped rows by reason", "reason", summary["dropped_by_reason"]))
        for line in summary["dropped"][:max_rows]:
            # plain text, never wrapped: each line stays a greppable file:line
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        if len(summary["dropped"]) > max_rows:
            console.print(f"  ... and {len(summary['dropped']) - max_rows} more")
    if "token_lengths" in summary:
        lengths = summary["token_lengths"]
        console.print(f"tokens per row: p50 {lengths['p50']}, p95 {lengths['p95']}, max {lengths['max']}")
    if "labels" in summary:
        console.print(counts_table("labels", "label", summary["labels"], shares=True))
    if "ratings" in summary:
        console.print(counts_table("ratings", "rating", summary["ratings"], shares=True))
    if "prompts" in summary:
        console.print(f"distinct prompts {summary['prompts']} (the rows of one prompt stay in one split)")
    if "pii" in summary:
        print_pii(summary, console)
    if "split_sizes" in summary:
        console.print(counts_table("split", "split", summary["split_sizes"]))
    for reason in summary.get("train_refuses", []):
        console.print(f"train would refuse this data: {reason}", markup=False, highlight=False, soft_wrap=True)


def print_pii(summary: dict, console) -> None:
    """Placeholders per type, then a few scrubbed rows as ``file:line: text``."""
    pii = summary["pii"]
    console.print(f"personal data: {pii['rows_with_pii']} of {summary['rows_kept']} kept rows had some, replaced by placeholders")
    console.print(counts_table("personal data replaced", "placeholder", pii["placeholders"], counted="found"))
    for example in summary["pii_examples"]:
        console.print(f"  {example['where']}: {example['text']}", markup=False, highlight=False, soft_wrap=True)


def counts_table(title: str, what: str, counts: dict, shares: bool = False, counted: str = "rows"):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    table.add_column(what, overflow="fold")
    table.add_column(counted, justify="right")
    if shares:
        table.add_column("share", justify="right")
    total = sum(counts.values()) or 1
    for name, count in counts.items():
        cells = [Text(str(name)), str(count)]  # Text: a label like "[x]" is not markup
        if shares:
            cells.append(f"{count / total:.0%}")
        table.add_row(*cells)
    return table
