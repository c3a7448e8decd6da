"""From a DataConfig to tokenised train/validation/test splits, with the manifest of it all.

load (row by row, bad rows reported) -> drop rows over max_length tokens -> seeded split with a
leakage check -> tokenise. The manifest (``data.json``) records sources with hashes, counts,
dropped rows by reason, split sizes and the dataset's content hash.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tuneloop.atomic import write_text_atomic
from tuneloop.config import DataConfig
from tuneloop.data.schema import Example


@dataclass
class PreparedData:
    report: object  # tuneloop.data.validate.DataReport
    splits: object  # tuneloop.data.split.Splits
    manifest: dict
    train_tokens: list
    val_tokens: list
    labels: list[str] | None = None  # class names, for classification


def prepare_dataset(cfg: DataConfig, tokenizer, task) -> PreparedData:
    """Validated, split and tokenised data for ``task``; raises DataError when nothing is usable.

    >>> data = prepare_dataset(config.data, tokenizer, get_task("sft"))  # doctest: +SKIP
    """
    from tuneloop.data.split import check_no_leakage, split_manifest
    from tuneloop.data.validate import drop_too_long

    if not cfg.path:
        from tuneloop.errors import ConfigError

        raise ConfigError("data.path: no data file given (--data FILE)")
    sources, reports = load_sources(cfg)
    labels = task.labels_of([example for report in reports for example in report.examples])
    tokens = {}

    def count_tokens(example: Example) -> int:
        tokens[id(example)] = task.tokenize(tokenizer, example, labels)
        return len(tokens[id(example)])

    if task.drops_too_long:
        reports = [drop_too_long(report, count_tokens, cfg.max_length) for report in reports]
    report = merged_report(reports)
    splits, mix_record = split_sources(cfg, sources, reports)
    check_no_leakage(splits)
    task.check_splits(splits)
    paths = [path for source in sources for path in source.config.path] or cfg.path
    manifest = split_manifest(cfg.model_copy(update={"path": paths}), report, splits)
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
    from tuneloop.evaluate.general_replay import REPLAY_SOURCE
    from tuneloop.train.distill import for_distillation

    return for_distillation(piece) if example.source == REPLAY_SOURCE else piece


def load_sources(cfg: DataConfig) -> tuple[list, list]:
    """(the datasets of the run, each one's row report): ``data`` alone, or with ``data.mix`` tagged by task."""
    from tuneloop.data.mixing import mixture_sources, tag
    from tuneloop.data.validate import load_examples

    if not cfg.mix:
        return [], [load_examples(cfg)]
    sources = mixture_sources(cfg)
    reports = [load_examples(source.config) for source in sources]
    for source, report in zip(sources, reports):
        tag(report.examples, source.name)
    return sources, reports


def merged_report(reports: list):
    from tuneloop.data.validate import DataReport

    if len(reports) == 1:
        return reports[0]
    return DataReport(
        examples=[e for r in reports for e in r.examples],
        dropped=[d for r in reports for d in r.dropped],
        rows_read=sum(r.rows_read for r in reports),
    )


def split_sources(cfg: DataConfig, sources: list, reports: list):
    """(the run's splits, the mixture record or None): each dataset split on its own, training rows mixed."""
    from tuneloop.data.mixing import mix_training_rows
    from tuneloop.data.split import Splits, split_train_val_test

    per_source = [split_train_val_test(r.examples, cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg.stratify) for r in reports]
    if not sources:
        return per_source[0], None
    train, record = mix_training_rows([s.train for s in per_source], sources, cfg.mixing, cfg.mixing_temperature, cfg.seed)
    for source, split in zip(sources, per_source):
        record["tasks"][source.name].update(val_rows=len(split.val), test_rows=len(split.test))
    splits = Splits(train=train, val=[e for s in per_source for e in s.val], test=[e for s in per_source for e in s.test])
    return splits, record


def mix_replay(cfg: DataConfig, task, splits, manifest: dict, count_tokens) -> None:
    """Add the base model's answers to general prompts to the training split only (``data.replay_fraction``).

    Replay rows over ``max_length`` tokens are left out; the manifest's ``replay`` entry records
    how many went in, which model answered, and hashes of the pool and of the rows.
    """
    from tuneloop.data.split import check_no_leakage
    from tuneloop.evaluate.general_replay import replay_examples

    rows, record = replay_examples(cfg, task, len(splits.train))
    if record is None:
        return
    kept = [example for example in rows if count_tokens(example) <= cfg.max_length]
    record.update(rows=len(kept), too_long_skipped=len(rows) - len(kept))
    splits.train = splits.train + kept
    check_no_leakage(splits)  # a company row that repeats a general prompt must not sit in val/test
    manifest["replay"] = record
    manifest["split_sizes"]["train_with_replay"] = len(splits.train)


def check_dataset(cfg: DataConfig, model: str | None = None) -> dict:
    """``tuneloop data check``: validate, split, and print the report; returns the summary."""
    from tuneloop.data.report import print_data_summary, summarise_data
    from tuneloop.data.split import split_train_val_test
    from tuneloop.data.validate import load_examples
    from tuneloop.progress import console

    report = load_examples(cfg)
    count_tokens = _token_counter(model, cfg) if model else None
    splits = split_train_val_test(report.examples, cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg.stratify)
    summary = summarise_data(report, splits, count_tokens)
    print_data_summary(summary, console())
    return summary


def check_datasets(cfg: DataConfig, model: str | None = None) -> dict[str, dict]:
    """``tuneloop data check --config``: every dataset of a run config (``data``, then each ``data.mix``
    entry, each read with its own format and columns); returns the summaries by task name."""
    from tuneloop.data.mixing import mixture_sources
    from tuneloop.errors import ConfigError
    from tuneloop.progress import console

    if not cfg.path:
        raise ConfigError("data.path: the config names no data file")
    if not cfg.mix:
        return {cfg.task_name: check_dataset(cfg, model)}
    summaries = {}
    for source in mixture_sources(cfg):
        console().rule(f"dataset {source.name}: {', '.join(source.config.path)}")
        summaries[source.name] = check_dataset(source.config, model)
    return summaries


def _token_counter(model: str, cfg: DataConfig):
    from tuneloop.models.load import load_tokenizer
    from tuneloop.train.sft_data import ensure_chat_template, tokenize_chat

    tokenizer = load_tokenizer(model)
    ensure_chat_template(tokenizer)
    if cfg.format in ("text", "label", "pairs"):
        return lambda example: len(tokenizer(example.input_text + example.target_text)["input_ids"])
    return lambda example: len(tokenize_chat(tokenizer, example))


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
