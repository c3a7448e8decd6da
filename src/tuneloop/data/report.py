"""What ``tuneloop data check`` prints: usable rows, dropped rows by reason, lengths, labels."""

from __future__ import annotations

from collections import Counter
from typing import Callable


def summarise_data(report, splits=None, count_tokens: Callable | None = None) -> dict:
    summary = {
        "rows_read": report.rows_read,
        "rows_kept": len(report.examples),
        "dropped_by_reason": dict(report.dropped_by_reason()),
        "dropped": [str(row) for row in report.dropped],
    }
    if count_tokens is not None:
        summary["token_lengths"] = length_percentiles([count_tokens(e) for e in report.examples])
    labels = Counter(e.label for e in report.examples if e.label is not None)
    if labels:
        summary["labels"] = dict(labels.most_common())
    if splits is not None:
        summary["split_sizes"] = splits.sizes()
    return summary


def length_percentiles(lengths: list[int]) -> dict[str, int]:
    ordered = sorted(lengths)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": at(0.5), "p95": at(0.95), "max": ordered[-1]}


def print_data_summary(summary: dict, console, max_rows: int = 30) -> None:
    from rich.table import Table

    console.print(f"rows read {summary['rows_read']}, kept {summary['rows_kept']}, dropped {len(summary['dropped'])}")
    if summary["dropped"]:
        reasons = Table(title="dropped rows by reason")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in summary["dropped_by_reason"].items():
            reasons.add_row(reason, str(count))
        console.print(reasons)
        for line in summary["dropped"][:max_rows]:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        if len(summary["dropped"]) > max_rows:
            console.print(f"  ... and {len(summary['dropped']) - max_rows} more")
    if "token_lengths" in summary:
        lengths = summary["token_lengths"]
        console.print(f"tokens per row: p50 {lengths['p50']}, p95 {lengths['p95']}, max {lengths['max']}")
    if "labels" in summary:
        console.print("labels: " + ", ".join(f"{k} {v}" for k, v in summary["labels"].items()))
    if "split_sizes" in summary:
        console.print("split: " + ", ".join(f"{k} {v}" for k, v in summary["split_sizes"].items()))
