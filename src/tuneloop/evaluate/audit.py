"""One evaluation suite on a finished run, on its own: what ``tuneloop audit NAME RUN`` does.

``tuneloop eval`` runs every registered suite; an audit runs one (the privacy audit, the bias
audit) with options of its own, base then tuned, and keeps its section in ``audit.json``
({suite name: section}). When the run was evaluated, the section also replaces that suite's
entry in ``metrics.json`` and the report is written again, so the report always shows the
latest audit.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneloop.atomic import write_json_atomic
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.evaluate.heldout import merged_for_inference
from tuneloop.evaluate.model_card import write_model_card
from tuneloop.evaluate.per_task import limit_rows
from tuneloop.evaluate.report import write_report
from tuneloop.evaluate.suite import Scoring
from tuneloop.evaluate.suites import SUITES
from tuneloop.evaluate.trust import TRUST_KEY, run_trust_section
from tuneloop.methods import get_method
from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir, read_json
from tuneloop.runs.models import load_base_model, load_tuned_model

AUDIT_FILE = "audit.json"


def audit_run(run_dir: str | Path, name: str, eval_overrides: dict | None = None, max_examples: int | None = None) -> dict:
    """Run suite ``name`` on base and tuned model of a finished run; returns its metrics.json section.

    ``eval_overrides``: eval settings of this audit (e.g. its probe file), checked by the run's
    config model like any other setting.
    """
    if name not in SUITES:
        raise ConfigError(f"no evaluation suite named {name!r}; known: {', '.join(SUITES)}")
    suite = SUITES[name]
    run = RunDir.existing(run_dir)
    run.artifact()  # refuses an unfinished run before any model is loaded
    config = run.config()
    if eval_overrides:
        config = config.model_validate({**config.model_dump(), "eval": {**config.eval.model_dump(), **eval_overrides}})
    task = get_task(config.task)
    reason = suite.applies(task, config)
    if reason is not None:
        raise TuneloopError(f"{run.path}: the {suite.label.lower()} audit does not apply: {reason}")
    test = limit_rows(run.split("test"), max_examples if max_examples is not None else config.eval.max_examples) if run.has_split("test") else []
    plan = suite.plan(run, config, task, test)
    base_model, tokenizer = load_base_model(run.path)
    base = suite.score(plan, base_model, tokenizer, Scoring(task, config, "base", task.packs))
    del base_model
    model, tokenizer = load_tuned_model(run.path)
    tuned = suite.score(plan, merged_for_inference(model), tokenizer, Scoring(task, config, "tuned", get_method(config.method.name).packs_with(task)))
    section = suite.section(plan, base, tuned, config)
    for filename, rows in suite.files(plan, base, tuned).items():
        run.write_rows(filename, rows)
    record_section(run, name, section)
    return section


def record_section(run: RunDir, name: str, section: dict) -> None:
    """The section into ``audit.json``, and into ``metrics.json`` and the report when the run was evaluated."""
    audit_file = run.path / AUDIT_FILE
    audits = read_json(audit_file) if audit_file.is_file() else {}
    write_json_atomic(audit_file, {**audits, name: section})
    if run.has_metrics():
        metrics = {**run.metrics(), name: section}
        metrics[TRUST_KEY] = run_trust_section(run, metrics)
        run.write_metrics(metrics)
        write_report(run.path, metrics, run.log_records(), prediction_samples(run.predictions_file))
        write_model_card(run, metrics)


def prediction_samples(path: Path, count: int = 8) -> list[dict]:
    """The first rows of ``predictions.jsonl``, the report's examples."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines[:count]]
