"""From a run's data settings to tokenised train/validation splits, with the manifest of it all.

load (row by row, bad rows reported) -> drop rows over max_length tokens -> seeded split with a
leakage check (a validation or test file given as is takes that split's place; training rows that
repeat one of its inputs are dropped) -> general replay rows (answered by the base model) into
the training split -> tokenise. The manifest (``data.json``) records sources and given split
files with hashes, counts, dropped rows by reason, split sizes and the dataset's content hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.config import DataConfig
from tuneloop.data.pipeline import (
    drop_given_inputs,
    given_splits_manifest,
    load_given_splits,
    load_sources,
    merged_report,
    split_sources,
)
from tuneloop.data.report import pii_record
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits, check_no_leakage, split_manifest
from tuneloop.data.validate import DataReport, drop_too_long
from tuneloop.errors import ConfigError
from tuneloop.losses.distill import for_distillation
from tuneloop.train.replay import REPLAY_SOURCE, replay_examples


@dataclass
class PreparedData:
    report: DataReport
    splits: Splits
    manifest: dict
    train_tokens: list
    val_tokens: list
    labels: list[str] | None = None  # class names, for classification


def prepare_dataset(cfg: DataConfig, tokenizer, task) -> PreparedData:
    """Validated, split and tokenised data for ``task``; raises DataError when nothing is usable.

    >>> data = prepare_dataset(config.data, tokenizer, get_task("sft"))  # doctest: +SKIP
    """
    if not cfg.path:
        raise ConfigError("data.path: no data file given (--data FILE)")
    sources, reports = load_sources(cfg)
    given = load_given_splits(cfg)
    labels = task.labels_of([example for report in [*reports, *given.values()] for example in report.examples])
    tokens = {}

    def count_tokens(example: Example) -> int:
        tokens[id(example)] = task.tokenize(tokenizer, example, labels)
        return len(tokens[id(example)])

    if task.drops_too_long:
        reports = [drop_too_long(report, count_tokens, cfg.max_length) for report in reports]
        given = {split: drop_too_long(report, count_tokens, cfg.max_length) for split, report in given.items()}
    reports = [drop_given_inputs(report, given) for report in reports]
    report = merged_report([*reports, *given.values()])
    splits, mix_record = split_sources(cfg, sources, reports, given)
    check_no_leakage(splits)
    task.check_splits(splits)
    paths = [path for source in sources for path in source.config.path] or cfg.path
    manifest = split_manifest(cfg.model_copy(update={"path": paths}), report, splits)
    if report.pii_scrubbed:
        manifest["pii"] = pii_record(report)
    if given:
        manifest["given_splits"] = given_splits_manifest(cfg, given)
    if mix_record is not None:
        manifest["mix"] = mix_record
    if labels is not None:
        manifest["labels"] = labels
    mix_replay(cfg, task, splits, manifest, count_tokens)

    def tokenized(examples: list[Example]) -> list:
        return [
            marked_for_distillation(cfg, example, piece)
            for example in examples
            for piece in task.pieces(tokens.get(id(example)) or task.tokenize(tokenizer, example, labels), cfg.max_length)
        ]

    return PreparedData(report, splits, manifest, tokenized(splits.train), tokenized(splits.val), labels)


def marked_for_distillation(cfg: DataConfig, example: Example, piece):
    """A replay row's tokens, marked for the KL loss when ``data.replay_loss`` is kl; other pieces unchanged."""
    if cfg.replay_loss != "kl":
        return piece
    return for_distillation(piece) if example.source == REPLAY_SOURCE else piece


def mix_replay(cfg: DataConfig, task, splits, manifest: dict, count_tokens) -> None:
    """Add the base model's answers to general prompts to the training split only (``data.replay_fraction``).

    Replay rows over ``max_length`` tokens are left out; the manifest's ``replay`` entry records
    how many went in, which model answered, and hashes of the pool and of the rows.
    """
    rows, record = replay_examples(cfg, task, len(splits.train))
    if record is None:
        return
    kept = [example for example in rows if count_tokens(example) <= cfg.max_length]
    record.update(rows=len(kept), too_long_skipped=len(rows) - len(kept))
    splits.train = splits.train + kept
    check_no_leakage(splits)  # a company row that repeats a general prompt must not sit in val/test
    manifest["replay"] = record
    manifest["split_sizes"]["train_with_replay"] = len(splits.train)
