"""A run's datasets read, checked and split: the model-free half of preparing data.

:mod:`tuneloop.train.prepare` adds what needs a tokenizer or a model (token lengths, replay
rows, tokenising); ``tuneloop data check`` reports on these steps alone.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Callable

from tuneloop.atomic import write_text_atomic
from tuneloop.config import DataConfig
from tuneloop.data.canaries import canary_rows
from tuneloop.data.mixing import mix_training_rows, mixture_sources, tag
from tuneloop.data.report import print_data_summary, summarise_data
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits, file_sha256, split_train_val_test, unfilled_splits
from tuneloop.data.validate import DataReport, DroppedRow, count_words, drop_too_long, load_examples
from tuneloop.errors import ConfigError, DataError
from tuneloop.progress import console


def load_sources(cfg: DataConfig) -> tuple[list, list]:
    """(the datasets of the run, each one's row report): ``data`` alone, or with ``data.mix`` tagged by task."""
    if not cfg.mix:
        return [], [load_examples(cfg)]
    sources = mixture_sources(cfg)
    reports = [load_examples(source.config) for source in sources]
    for source, report in zip(sources, reports):
        tag(report.examples, source.name)
    return sources, reports


def merged_report(reports: list):
    if len(reports) == 1:
        return reports[0]
    return DataReport(
        examples=[e for r in reports for e in r.examples],
        dropped=[d for r in reports for d in r.dropped],
        rows_read=sum(r.rows_read for r in reports),
        pii_scrubbed=any(r.pii_scrubbed for r in reports),
        pii=sum((r.pii for r in reports), Counter()),
        pii_rows=[where for r in reports for where in r.pii_rows],
    )


# The split files a user may give (DataConfig field -> split), used as is instead of a share of data.path.
GIVEN_SPLIT_FIELDS = {"val_path": "val", "test_path": "test"}


def load_given_splits(cfg: DataConfig) -> dict[str, DataReport]:
    """``data.val_path`` / ``data.test_path`` read and validated like ``data.path``, by split name."""
    given = {}
    for field, split in GIVEN_SPLIT_FIELDS.items():
        path = getattr(cfg, field)
        if path:
            given[split] = load_examples(cfg.model_copy(update={"path": [path], "mix": []}))
            if cfg.mix:  # they belong to the main dataset, scored as its task
                tag(given[split].examples, cfg.task_name)
    return given


def drop_given_inputs(report: DataReport, given: dict[str, DataReport]) -> DataReport:
    """Rows of ``report`` with the same normalised input as a row of a given split file are dropped and
    reported, naming that row: kept, they would train on what the split is judged on."""
    owners = {}
    for split, given_report in given.items():
        for example in given_report.examples:
            owners.setdefault(example.leakage_key(), (split, example))
    kept = []
    for example in report.examples:
        owner = owners.get(example.leakage_key())
        if owner is None:
            kept.append(example)
            continue
        split, other = owner
        reason = f"leaks into the {split} split: same input as {other.source}:{other.line} (data.{split}_path)"
        report.dropped.append(DroppedRow(example.source, example.line, None, reason))
    if given and not kept:
        files = ", ".join(sorted({e.source for r in given.values() for e in r.examples}))
        raise DataError(f"every usable row of data.path has the same input as a row of {files}; nothing is left to train on")
    report.examples = kept
    return report


def given_splits_manifest(cfg: DataConfig, given: dict[str, DataReport]) -> dict:
    """data.json's record of the given split files: path, sha256 and row counts."""
    paths = {split: getattr(cfg, field) for field, split in GIVEN_SPLIT_FIELDS.items()}
    return {
        split: {"path": str(paths[split]), "sha256": file_sha256(paths[split]), "rows_read": report.rows_read,
                "rows_kept": len(report.examples), "rows_dropped": len(report.dropped)}
        for split, report in given.items()
    }  # fmt: skip


def split_sources(cfg: DataConfig, sources: list, reports: list, given: dict[str, DataReport] | None = None,
                  shortfalls: list[str] | None = None):  # fmt: skip
    """(the run's splits, the mixture record or None): each dataset split on its own, training rows mixed,
    then the canaries (``data.canaries``) added to the training rows alone.

    A given split file (``given``, see :func:`load_given_splits`) is the main dataset's split as is;
    its rows are then the rest of the main dataset's files, split into the other splits.
    A requested split left empty is a DataError, or, with a ``shortfalls`` list, a message appended to it.
    """
    given = given or {}
    per_source = []
    for i, (report, paths) in enumerate(zip(reports, source_paths(cfg, sources))):
        shares, files = fractions(cfg, given if i == 0 else {}), ", ".join(paths)
        try:
            per_source.append(split_train_val_test(report.examples, *shares, cfg.seed, cfg.stratify))
        except DataError as err:  # e.g. one label only: say which files
            raise DataError(f"{files}: {err}") from None
        shortfall = unfilled_splits(per_source[-1], *shares, files)
        if shortfall and shortfalls is None:
            raise DataError(shortfall)
        if shortfall:
            shortfalls.append(shortfall)
    per_source[0] = Splits(
        train=per_source[0].train,
        val=given["val"].examples if "val" in given else per_source[0].val,
        test=given["test"].examples if "test" in given else per_source[0].test,
    )
    if not sources:
        return with_canaries(cfg, per_source[0]), None
    train, record = mix_training_rows([s.train for s in per_source], sources, cfg.mixing, cfg.mixing_temperature, cfg.seed)
    for source, split in zip(sources, per_source):
        record["tasks"][source.name].update(val_rows=len(split.val), test_rows=len(split.test))
    splits = Splits(train=train, val=[e for s in per_source for e in s.val], test=[e for s in per_source for e in s.test])
    return with_canaries(cfg, splits, task_name=cfg.task_name), record


def source_paths(cfg: DataConfig, sources: list) -> list[list[str]]:
    """The files of each dataset of the run: ``data.path`` alone, or each ``data.mix`` source's."""
    return [list(source.config.path) for source in sources] if sources else [list(cfg.path)]


def with_canaries(cfg: DataConfig, splits: Splits, task_name: str | None = None) -> Splits:
    """``splits`` with the canary rows of ``cfg`` after the training rows (validation and test untouched);
    in a multi-task run they belong to the main dataset (``task_name``)."""
    rows = canary_rows(cfg)
    if task_name is not None:
        tag(rows, task_name)
    return Splits(train=splits.train + rows, val=splits.val, test=splits.test)


def fractions(cfg: DataConfig, given: dict) -> tuple[float, float]:
    """(validation, test) shares of a dataset's files: none for a split given as a file of its own."""
    return (0.0 if "val" in given else cfg.val_fraction, 0.0 if "test" in given else cfg.test_fraction)


# Formats whose long rows training cuts into max_length pieces (continued pretraining) instead of dropping them.
CUT_INTO_PIECES = ("text",)

TokenCounterFor = Callable[[str], Callable[[Example], int]]  # data format -> an example's length in tokens


def check_dataset(cfg: DataConfig, token_counter_for: TokenCounterFor | None = None) -> dict:
    """``tuneloop data check``: validate, split, and print the report; returns the summary.

    ``token_counter_for`` (see :func:`tuneloop.text.tokenize.token_counter`) adds token lengths.
    """
    report, given = load_examples(cfg), load_given_splits(cfg)
    count_tokens = token_counter_for(cfg.format) if token_counter_for else None
    if cfg.format not in CUT_INTO_PIECES:
        too_long = partial(drop_too_long, count_tokens=count_tokens or count_words, max_length=cfg.max_length,
                           unit="tokens" if count_tokens else "words (at least as many tokens; --model counts them)")  # fmt: skip
        report, given = too_long(report), {split: too_long(given_report) for split, given_report in given.items()}
    shortfalls: list[str] = []  # reported, not raised: the check shows every row's fate first
    splits, _ = split_sources(cfg, [], [drop_given_inputs(report, given)], given, shortfalls)
    summary = summarise_data(merged_report([report, *given.values()]), splits, count_tokens)
    if shortfalls:
        summary["train_refuses"] = shortfalls
    print_data_summary(summary, console())
    return summary


def check_datasets(cfg: DataConfig, token_counter_for: TokenCounterFor | None = None) -> dict[str, dict]:
    """``tuneloop data check --config``: every dataset of a run config (``data``, then each ``data.mix``
    entry, each read with its own format and columns); returns the summaries by task name."""
    if not cfg.path:
        raise ConfigError("data.path: the config names no data file")
    if not cfg.mix:
        return {cfg.task_name: check_dataset(cfg, token_counter_for)}
    summaries = {}
    for source in mixture_sources(cfg):
        console().rule(f"dataset {source.name}: {', '.join(source.config.path)}")
        summaries[source.name] = check_dataset(source.config, token_counter_for)
    return summaries


def save_splits(folder: Path, splits) -> None:
    """Write each split as JSONL so evaluation later uses exactly these rows."""
    for name in ("train", "val", "test"):
        rows = [json.dumps(dataclasses.asdict(example), ensure_ascii=False) for example in getattr(splits, name)]
        write_text_atomic(Path(folder) / f"{name}.jsonl", "".join(row + "\n" for row in rows))


def load_split(path: Path) -> list[Example]:
    examples = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = json.loads(line)
        fields["messages"] = tuple(fields.get("messages") or ())
        examples.append(Example(**fields))
    return examples
