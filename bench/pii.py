"""PII scrubbing: precision and recall per type on the project's labelled set.

The set is :func:`tuneloop.data.pii_labelled.labelled_pii_rows`: seeded support-ticket sentences
with valid personal data of every type (Luhn-valid cards, mod-97-valid IBANs, valid phone numbers
in three notations, IPv4/IPv6, SSNs, NINOs, street addresses, names) beside look-alikes that are
not personal data (16-digit order numbers failing Luhn, IBANs with wrong check digits, invoice
and ticket numbers, dates, amounts, versions), and rows of look-alikes only.

Scoring is per span and per type, by overlap: a detection of type T is a true positive when it
overlaps a labelled span of type T (precision: true detections / detections of T); a labelled span
of type T is found when a detection of type T overlaps it (recall). How many of the found spans
also have exactly the labelled boundaries is reported beside (``exact``). A detection of a value
under another type counts against both types.

    python bench/pii.py                       # bench/results/pii.json and pii.md
    python bench/pii.py --rows-per-type 20 --results /tmp/pii
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def score(rows, detector) -> dict:
    """Per type: labelled, detected, true detections, found, found with exact boundaries, precision, recall."""
    from tuneloop.data.pii import PII_TYPES

    counts = {kind: Counter() for kind in PII_TYPES}
    for row in rows:
        found = detector.find(row.text)
        for span in found:
            counts[span.kind]["detected"] += 1
            counts[span.kind]["true"] += any(overlaps(span, gold) and gold.kind == span.kind for gold in row.spans)
        for gold in row.spans:
            counts[gold.kind]["labelled"] += 1
            matches = [span for span in found if span.kind == gold.kind and overlaps(span, gold)]
            counts[gold.kind]["found"] += bool(matches)
            counts[gold.kind]["exact"] += any((s.start, s.end) == (gold.start, gold.end) for s in matches)
    return {kind: per_type(c) for kind, c in counts.items()}


def overlaps(a, b) -> bool:
    return a.start < b.end and b.start < a.end


def per_type(c: Counter) -> dict:
    return {
        "labelled": c["labelled"], "detected": c["detected"], "true_detections": c["true"], "found": c["found"],
        "found_exact": c["exact"],
        "precision": round(c["true"] / c["detected"], 4) if c["detected"] else None,
        "recall": round(c["found"] / c["labelled"], 4) if c["labelled"] else None,
    }  # fmt: skip


def negatives_touched(rows, detector) -> dict:
    """Rows with no personal data at all: how many got a detection, and of which types."""
    empty = [row for row in rows if not row.spans]
    kinds = Counter(span.kind for row in empty for span in detector.find(row.text))
    return {"rows": len(empty), "rows_with_a_detection": sum(bool(detector.find(r.text)) for r in empty), "detections_by_type": dict(kinds)}


def render_markdown(result: dict) -> str:
    lines = [
        "# PII scrubbing: precision and recall per type",
        "",
        f"{result['rows']} labelled rows (seed {result['seed']}, {result['rows_per_type']} per type, "
        f"{result['negatives']['rows']} of look-alikes only); detector: {result['detector']}. "
        "Span-level, by overlap of the same type; `exact`: found with exactly the labelled boundaries.",
        "",
        "| type | labelled | detected | precision | recall | exact |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, row in result["per_type"].items():
        exact = f"{row['found_exact'] / row['found']:.2f}" if row["found"] else "–"
        lines.append(f"| {kind} | {row['labelled']} | {row['detected']} | {fmt(row['precision'])} | {fmt(row['recall'])} | {exact} |")
    neg = result["negatives"]
    lines += [
        "",
        f"Rows of look-alikes only (order numbers failing Luhn, IBANs failing mod-97, invoice and ticket numbers, "
        f"dates, amounts, versions): {neg['rows_with_a_detection']} of {neg['rows']} got a detection "
        f"({', '.join(f'{k} {v}' for k, v in neg['detections_by_type'].items()) or 'none'}).",
        "",
        f"Measured {result['date']} on {result['machine']} in {result['seconds']:.0f} s "
        f"({result['ms_per_row']:.1f} ms per row after the model load).",
        "",
        f"Command: `{result['command']}`",
    ]
    return "\n".join(lines) + "\n"


def fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-type", type=int, default=100, help="Labelled rows led by each PII type.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the labelled set.")
    parser.add_argument("--results", type=Path, default=Path("bench/results"), help="Folder of pii.json and pii.md.")
    args = parser.parse_args()

    from tuneloop.atomic import write_json_atomic, write_text_atomic
    from tuneloop.data.pii import MIN_SCORE, NER_MODEL, PiiDetector
    from tuneloop.data.pii_labelled import labelled_pii_rows

    rows = labelled_pii_rows(args.rows_per_type, seed=args.seed)
    detector = PiiDetector()
    started = time.perf_counter()
    per_type = score(rows, detector)
    seconds = time.perf_counter() - started
    result = {
        "rows": len(rows), "rows_per_type": args.rows_per_type, "seed": args.seed,
        "detector": f"Presidio recognizers + spaCy {NER_MODEL}, min score {MIN_SCORE}",
        "per_type": per_type, "negatives": negatives_touched(rows, detector),
        "seconds": seconds, "ms_per_row": 1000 * seconds / len(rows),
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "command": f"python bench/pii.py --rows-per-type {args.rows_per_type} --seed {args.seed}",
    }  # fmt: skip
    results = args.results if args.results.is_absolute() else ROOT / args.results
    write_json_atomic(results / "pii.json", result)
    write_text_atomic(results / "pii.md", render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
