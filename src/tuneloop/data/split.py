"""Seeded train/validation/test splits that never leak an example across splits.

Examples are grouped by their normalised input text first, so duplicates and near-duplicates
(case, accents, punctuation) always share a split. With labels, groups are stratified: each
label's groups are spread evenly through the order the splits are cut from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tuneloop.data.canaries import canary_manifest
from tuneloop.data.schema import Example
from tuneloop.errors import DataError


@dataclass
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_train_val_test(
    examples: list[Example], val_fraction: float, test_fraction: float, seed: int, stratify: bool = True
) -> Splits:
    """Seeded split of whole leakage groups; stratified by label when every example has one."""
    if val_fraction + test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction must be below 1 (got {val_fraction + test_fraction:g})")
    groups = group_by_leakage_key(examples)
    if stratify and groups and all(group[0].label is not None for group in groups):
        check_several_classes(groups)
        order = stratified_order(groups, seed)
    else:
        order = random.Random(seed).sample(groups, len(groups))
    n_test, n_val = split_counts(len(order), val_fraction, test_fraction)
    return Splits(
        train=flatten(order[n_test + n_val :]), val=flatten(order[n_test : n_test + n_val]), test=flatten(order[:n_test])
    )


def unfilled_splits(splits: Splits, val_fraction: float, test_fraction: float, files: str) -> str | None:
    """Why the split falls short, with the numbers, when a requested split is left empty (too few distinct
    inputs to cut it); None when every requested split has rows. Training refuses such data: it would
    report nothing anyone can trust."""
    empty = [f"{name} (data.{field}={share:g})" for name, field, share, rows in (
        ("validation", "val_fraction", val_fraction, splits.val), ("test", "test_fraction", test_fraction, splits.test))
        if share > 0 and not rows]  # fmt: skip
    if not empty:
        return None
    examples = splits.train + splits.val + splits.test
    groups = len(group_by_leakage_key(examples))
    return (
        f"too few rows for the requested splits: {files} leaves {len(examples)} usable rows with {groups} distinct inputs, "
        f"and the {' and '.join(empty)} split would be empty; 3 distinct inputs give every split a row: "
        "add rows, or set the fraction to 0"
    )


def check_several_classes(groups: list[list[Example]]) -> None:
    labels = {group[0].label for group in groups}
    if len(labels) == 1:
        raise DataError(
            f"cannot stratify by label: every row has the label {labels.pop()!r}; "
            "a classifier needs at least two classes (or set data.stratify: false)"
        )


def flatten(groups: list[list[Example]]) -> list[Example]:
    return [example for group in groups for example in group]


def group_by_leakage_key(examples: list[Example]) -> list[list[Example]]:
    """Examples with the same normalised input, in first-seen order: one group never splits."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.leakage_key()].append(example)
    return list(groups.values())


def stratified_order(groups: list[list[Example]], seed: int) -> list[list[Example]]:
    """Groups ordered so that any prefix holds each label in proportion."""
    rng = random.Random(seed)
    by_label: dict[str, list[list[Example]]] = defaultdict(list)
    for group in groups:
        by_label[group[0].label].append(group)
    ranked = []
    for label in sorted(by_label):
        members = rng.sample(by_label[label], len(by_label[label]))
        ranked += [((index + rng.random()) / len(members), group) for index, group in enumerate(members)]
    return [group for _, group in sorted(ranked, key=lambda item: item[0])]


def split_counts(groups: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Groups for test and validation; each non-zero fraction gets one when there are >= 3,
    and training always keeps at least one group."""
    n_test, n_val = round(groups * test_fraction), round(groups * val_fraction)
    if groups >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    n_test = min(n_test, max(groups - 1, 0))
    n_val = min(n_val, max(groups - n_test - 1, 0))
    return n_test, n_val


def check_no_leakage(splits: Splits) -> None:
    """Raise when two splits share a normalised input, naming both rows."""
    seen: dict[str, tuple[str, Example]] = {}
    for name in ("train", "val", "test"):
        for example in getattr(splits, name):
            key = example.leakage_key()
            if key in seen and seen[key][0] != name:
                other_split, other = seen[key]
                raise DataError(
                    f"leakage: {example.source}:{example.line} ({name}) has the same normalised text as "
                    f"{other.source}:{other.line} ({other_split})"
                )
            seen.setdefault(key, (name, example))


# Example fields added after dataset hashes were first recorded, with their defaults: left out of the
# hash while at the default, so the hash of every earlier run's data still compares.
LATER_FIELDS = {"completion": "", "good": None, "score": None}


def dataset_hash(examples: list[Example]) -> str:
    """sha256 of the examples' content (not where they came from), order-sensitive."""
    digest = hashlib.sha256()
    for example in examples:
        content = {
            k: v
            for k, v in dataclasses.asdict(example).items()
            if k not in ("source", "line", "meta") and not (k in LATER_FIELDS and v == LATER_FIELDS[k])
        }
        digest.update(json.dumps(content, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a source file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_manifest(cfg, report, splits: Splits, max_listed: int = 50) -> dict:
    """What ``data.json`` records about a run's data (and its canaries, when ``data.canaries`` planted some)."""
    manifest = {
        "sources": [{"path": str(p), "sha256": file_sha256(p)} for p in cfg.path],
        "format": cfg.format,
        "rows_read": report.rows_read,
        "rows_kept": len(report.examples),
        "rows_dropped": len(report.dropped),
        "dropped_by_reason": dict(report.dropped_by_reason()),
        "dropped_rows": [dataclasses.asdict(row) for row in report.dropped[:max_listed]],
        "split_sizes": splits.sizes(),
        "split_seed": cfg.seed,
        "label_counts": dict(Counter(e.label for e in report.examples if e.label is not None)),
        "dataset_hash": dataset_hash(splits.train + splits.val + splits.test),
    }
    if cfg.canaries:
        manifest["canaries"] = canary_manifest(cfg)
    return manifest
