"""A run's datasets read, checked and split: the model-free half of preparing data.

:mod:`tuneloop.train.prepare` adds what needs a tokenizer or a model (token lengths, replay
rows, tokenising); ``tuneloop data check`` reports on these steps alone.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from tuneloop.atomic import write_text_atomic
from tuneloop.config import DataConfig
from tuneloop.data.mixing import mix_training_rows, mixture_sources, tag
from tuneloop.data.report import print_data_summary, summarise_data
from tuneloop.data.schema import Example
from tuneloop.data.split import Splits, split_train_val_test
from tuneloop.data.validate import DataReport, load_examples
from tuneloop.errors import ConfigError
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
    )


def split_sources(cfg: DataConfig, sources: list, reports: list):
    """(the run's splits, the mixture record or None): each dataset split on its own, training rows mixed."""
    per_source = [split_train_val_test(r.examples, cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg.stratify) for r in reports]
    if not sources:
        return per_source[0], None
    train, record = mix_training_rows([s.train for s in per_source], sources, cfg.mixing, cfg.mixing_temperature, cfg.seed)
    for source, split in zip(sources, per_source):
        record["tasks"][source.name].update(val_rows=len(split.val), test_rows=len(split.test))
    splits = Splits(train=train, val=[e for s in per_source for e in s.val], test=[e for s in per_source for e in s.test])
    return splits, record


TokenCounterFor = Callable[[str], Callable[[Example], int]]  # data format -> an example's length in tokens


def check_dataset(cfg: DataConfig, token_counter_for: TokenCounterFor | None = None) -> dict:
    """``tuneloop data check``: validate, split, and print the report; returns the summary.

    ``token_counter_for`` (see :func:`tuneloop.text.tokenize.token_counter`) adds token lengths.
    """
    report = load_examples(cfg)
    count_tokens = token_counter_for(cfg.format) if token_counter_for else None
    splits = split_train_val_test(report.examples, cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg.stratify)
    summary = summarise_data(report, splits, count_tokens)
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
