"""Base vs tuned on any data file, not only the run's own test split: ``tuneloop eval RUN --data FILE``.

The file is read with the run's data settings (format, columns, template, system prompt) unless
the caller says otherwise, scored by the run's task exactly as :func:`~tuneloop.evaluate.heldout.evaluate_run`
scores the test split, and the results go beside the run's own, never over them:
``RUN/eval-<name>.json``, ``.predictions.jsonl``, ``.md`` and ``.html``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.config import DataConfig, format_validation_error
from tuneloop.data.split import file_sha256
from tuneloop.data.validate import DataReport, load_examples
from tuneloop.errors import ConfigError, DataError
from tuneloop.evaluate.heldout import assemble_metrics, merged_for_inference, prediction_rows, score_model
from tuneloop.evaluate.per_task import limit_rows
from tuneloop.evaluate.report import MAX_SAMPLES, render_html, render_markdown
from tuneloop.methods import get_method
from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_base_model, load_tuned_model

# How a file is read; a different format starts from that format's defaults, not the run's columns.
READING_SETTINGS = ("format", "columns", "prompt_template", "target_columns")


def evaluate_file(
    run_dir: str | Path, files: list[str], reading: dict | None = None, name: str | None = None, max_examples: int | None = None
) -> tuple[dict, dict[str, Path]]:
    """Score the run's base and tuned model on ``files``; returns (the metrics, the files written).

    ``reading``: data settings that replace the run's for these files (format, columns, prompt_template,
    target_columns). ``name`` names the outputs, ``RUN/eval-<name>.*`` (default: the first file's name).

    >>> metrics, written = evaluate_file("runs/triage", ["golden.csv"])  # doctest: +SKIP
    """
    run = RunDir.existing(run_dir)
    run.artifact()  # refuses an unfinished run before any model is loaded
    config = run.config()
    data = file_data_config(config.data, files, reading or {})
    config = config.model_copy(update={"data": data})
    task, labels = get_task(config.task), run.labels()
    task.check_config(config)  # the file's format fits the run's task
    report = load_examples(data)
    rows = limit_rows(report.examples, max_examples if max_examples is not None else config.eval.max_examples)
    check_labels_known(rows, labels)
    base_model, tokenizer = load_base_model(run_dir)
    base = score_model(task, base_model, tokenizer, rows, config, labels, "base model", packs=task.packs)
    del base_model
    model, tokenizer = load_tuned_model(run_dir)
    packs = get_method(config.method.name).packs_with(task)
    tuned = score_model(task, merged_for_inference(model), tokenizer, rows, config, labels, "tuned model", packs)
    metrics = assemble_metrics(base, tuned, rows, config, task)
    metrics.update(file_record(data, report, len(rows)))
    return metrics, write_outputs(run, output_name(name, files), metrics, prediction_rows(rows, base["predictions"], tuned["predictions"]))


def file_data_config(run_data: DataConfig, files: list[str], reading: dict) -> DataConfig:
    """The run's data settings for ``files``; ``reading`` replaces how they are read."""
    unknown = sorted(set(reading) - set(READING_SETTINGS))
    if unknown:
        raise ConfigError(f"cannot set {', '.join(unknown)} for an evaluation file; only {', '.join(READING_SETTINGS)}")
    raw = run_data.model_dump(mode="json")
    if reading.get("format", raw["format"]) != raw["format"]:
        defaults = DataConfig.model_fields
        raw.update({key: defaults[key].get_default(call_default_factory=True) for key in READING_SETTINGS})
    raw.update(reading, path=list(files), val_path=None, test_path=None, mix=[], replay_fraction=0.0)
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "the evaluation file's settings", prefix="data.")) from None


def check_labels_known(rows: list, labels: list[str] | None) -> None:
    """A classifier scores only the classes it was trained on."""
    if labels is None:
        return
    unknown = sorted({row.label for row in rows} - set(labels))
    if unknown:
        where = ", ".join(f"{row.source}:{row.line}" for row in rows if row.label in unknown[:1])
        raise DataError(
            f"label {unknown[0]!r} ({where}) is not one the run was trained on ({', '.join(labels)}); "
            "a classifier cannot score classes it never saw"
        )


def file_record(data: DataConfig, report: DataReport, rows_scored: int, max_listed: int = 50) -> dict:
    """What the results say about the file: the files with hashes, how it was read, and its bad rows."""
    return {
        "data": {"files": ", ".join(data.path), "format": data.format, "rows_read": report.rows_read,
                 "rows_kept": len(report.examples), "rows_dropped": len(report.dropped), "rows_scored": rows_scored},
        "data_files": [{"path": str(path), "sha256": file_sha256(path)} for path in data.path],
        "dropped_rows": [str(row) for row in report.dropped[:max_listed]],
    }  # fmt: skip


def output_name(name: str | None, files: list[str]) -> str:
    """``golden set.csv`` -> ``golden-set``: a name that is safe in a file name."""
    chosen = name or Path(files[0]).stem
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", chosen).strip("-.")
    if not safe:
        raise ConfigError(f"--name {chosen!r}: use letters, digits, '.', '_' or '-'")
    return safe


def write_outputs(run: RunDir, name: str, metrics: dict, rows: list[dict]) -> dict[str, Path]:
    """``RUN/eval-<name>.json``, ``.predictions.jsonl``, ``.md`` and ``.html``; the run's own files stay as they are."""
    stem = f"eval-{name}"
    title = f"Evaluation on {metrics['data']['files']}: {run.path.name}"
    samples = rows[:MAX_SAMPLES]
    return {
        "json": write_json_atomic(run.path / f"{stem}.json", metrics),
        "predictions": run.write_rows(f"{stem}.predictions.jsonl", rows),
        "markdown": write_text_atomic(run.path / f"{stem}.md", render_markdown(title, metrics, [], samples)),
        "html": write_text_atomic(run.path / f"{stem}.html", render_html(title, metrics, {}, samples)),
    }

