"""``tuneloop retrain``: a candidate from new data + feedback + replay, judged against production.

1. New company data, read with the production run's data settings, split (its test split is held out).
2. Feedback since the production version: corrections -> SFT rows; preferences -> ``preferences.jsonl``.
3. Replay: a seeded sample of production's own training rows, against forgetting.
4. The candidate trains from production's adapter on 1+2+3 and is registered with production as parent.
5. Candidate and production are scored on production's frozen test split, the new test split and
   the general-ability check (the forgetting suite's ``qa_accuracy``: general-knowledge questions
   asked without the system prompt); the gate decides, and the decision with its numbers is
   recorded (promotion, or archiving with the reason) in the store and in ``retrain.json``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.config import build_config
from tuneloop.data.pipeline import load_split
from tuneloop.data.split import dataset_hash, split_train_val_test, unfilled_splits
from tuneloop.data.validate import load_examples
from tuneloop.errors import DataError, TuneloopError
from tuneloop.evaluate.suite import Scoring
from tuneloop.evaluate.suites import SUITES
from tuneloop.loop.feedback_rows import correction_examples, preference_rows
from tuneloop.loop.trust_gate import judge_candidate, record_settled
from tuneloop.loop.gate import Gate, decide
from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir
from tuneloop.runs.models import load_tuned_model
from tuneloop.store.feedback import corrections, preferences
from tuneloop.store.db import write_transaction
from tuneloop.store.versions import production, register
from tuneloop.text.metrics import LOWER_IS_BETTER, choose_primary
from tuneloop.train.run import train

GENERAL_CHECK = ("forgetting", "qa_accuracy")  # the suite and the gate measure of it the "general" check compares


def retrain(conn, project: str, new_data: list[str], out: Path, gate: Gate, replay: float = 0.3, overrides: dict | None = None) -> dict:
    """Run the whole loop once; returns what ``retrain.json`` records."""
    current = production(conn, project)
    if current is None:
        raise TuneloopError(f"project {project!r} has no production version to retrain from")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TuneloopError(f"{out} already exists; choose another --out")
    base_config = RunDir(current.run_path).config()
    dataset = build_dataset(conn, current, base_config, new_data, out / "dataset", replay)
    candidate_run = train_candidate(base_config, current.run_path, dataset, out / "candidate", overrides or {})
    results = compare_on_checks(current.run_path, candidate_run, dataset, base_config, gate)
    return record_decision(conn, current, candidate_run, results, gate, dataset, out)


def build_dataset(conn, current, config, new_data: list[str], folder: Path, replay: float) -> dict:
    """Write the candidate's training rows and the new test split; returns the dataset manifest."""
    new_config = config.data.model_copy(update={"path": list(new_data)})
    new = split_train_val_test(load_examples(new_config).examples, config.data.val_fraction, config.data.test_fraction, config.data.seed)
    check_new_test_split(new, config.data, ", ".join(map(str, new_data)))
    since = current.created_at
    fixes = correction_examples(corrections(conn, project=current.project, since=since), config.data.system_prompt)
    pairs = preference_rows(preferences(conn, project=current.project, since=since))
    previous = RunDir(current.run_path).split("train")
    replayed = random.Random(config.data.seed).sample(previous, round(replay * len(previous)))
    train_rows = new.train + new.val + fixes + replayed
    write_examples(folder / "train.jsonl", train_rows)
    write_text_atomic(folder / "new_test.jsonl", "".join(json.dumps(dataclasses.asdict(e), ensure_ascii=False) + "\n" for e in new.test))
    write_text_atomic(folder / "preferences.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    manifest = {
        "new_data": [str(p) for p in new_data], "new_rows": {"train": len(new.train) + len(new.val), "test": len(new.test)},
        "corrections": len(fixes), "preferences": len(pairs), "replayed": len(replayed), "parent": current.id,
        "train_hash": dataset_hash(train_rows), "folder": str(folder),
    }  # fmt: skip
    write_json_atomic(folder / "manifest.json", manifest)
    return manifest


def check_new_test_split(new, data_config, files: str) -> None:
    """The gate compares candidate and production on the new data's test split: refuse data too small to cut one."""
    problem = unfilled_splits(new, data_config.val_fraction, data_config.test_fraction, files)
    if problem is None and not new.test:
        problem = f"{files}: the production run's data.test_fraction is 0, so the new data has no test split for the gate to compare on"
    if problem is not None:
        raise DataError(problem)


def write_examples(path: Path, examples) -> None:
    """Training rows in the ``chat`` format (``messages``, system turns included) for ``tuneloop train``."""
    rows = [json.dumps({"messages": list(e.messages)}, ensure_ascii=False) for e in examples]
    write_text_atomic(path, "".join(row + "\n" for row in rows))


def train_candidate(config, production_run: Path, dataset: dict, out: Path, overrides: dict) -> Path:
    """Train from production's adapter on the new dataset (its own validation split, no test split)."""
    raw = config.model_dump(mode="json")
    raw["out"] = str(out)
    raw["data"].update(
        path=[str(Path(dataset["folder"]) / "train.jsonl")], format="chat", columns={}, prompt_template=None,
        target_columns=None, system_prompt=None, test_fraction=0.0, val_path=None, test_path=None,
    )  # fmt: skip
    raw["method"]["init_from"] = str(production_run)
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        raw[section][key] = value
    return train(build_config(raw, "retrain"))


def compare_on_checks(production_run: Path, candidate_run: Path, dataset: dict, config, gate: Gate) -> dict:
    """Scores of both models on the frozen test, the new test and the general check."""
    production = RunDir(production_run)
    tests = {"frozen_test": production.split("test"), "new_test": load_split(Path(dataset["folder"]) / "new_test.jsonl")}
    return compare_runs(production_run, candidate_run, tests, production, config, gate)


def compare_runs(production_run: Path, candidate_run: Path, tests: dict, reference: RunDir, config, gate: Gate, also=None) -> dict:
    """Both models scored by ``config``'s task on each of ``tests`` ({name: rows}) and on the general check,
    planned from ``reference`` (the run whose training data and test split the suite reads).

    ``also(role, model, tokenizer)``, when given, runs while each model is loaded (align generates its answers there).
    """
    task = get_task(config.task)
    suite = SUITES[GENERAL_CHECK[0]]
    # The gate checks general ability wherever the task allows it; eval.forgetting only switches the suite off in `tuneloop eval`.
    general_config = config.model_copy(update={"eval": config.eval.model_copy(update={"forgetting": True})})
    skipped = suite.applies(task, general_config)
    first_test = next(iter(tests.values()), [])
    plan = suite.plan(reference, general_config, task, first_test) if skipped is None else None
    scores: dict[str, dict] = {name: {} for name in (*tests, "general")}
    for role, which, run in (("production", "base", production_run), ("candidate", "tuned", candidate_run)):
        model, tokenizer = load_tuned_model(run)
        for name, rows in tests.items():
            scores[name][role] = task.score(model, tokenizer, rows, config, None, packs=False)["scores"]
        if skipped is None:
            scores["general"][role] = suite.score(plan, model, tokenizer, Scoring(task, general_config, which, packs=False))
        if also is not None:
            also(role, model, tokenizer)
        del model
    requested = gate.metric if gate.metric != "auto" else config.eval.primary
    requested = task.default_primary if requested == "auto" else requested
    results = {name: split_check(scores[name], requested) for name in tests}
    results["general"] = {"skipped": skipped} if skipped else general_check(suite, plan, scores["general"], general_config)
    return results


def split_check(pair: dict, requested: str) -> dict:
    """One test split's result: the gate metric of production and candidate (and all their scores)."""
    metric = choose_primary(pair["candidate"], requested)
    return {"metric": metric, "production": pair["production"][metric], "candidate": pair["candidate"][metric],
            "lower_is_better": metric in LOWER_IS_BETTER, "all": pair}  # fmt: skip


def general_check(suite, plan, scores: dict, config) -> dict:
    """The general check's result: the suite's gate measure, production as its base, the candidate as tuned."""
    section = suite.section(plan, scores["production"], scores["candidate"], config)
    metric = GENERAL_CHECK[1]
    measure = suite.gate_measures(section)[metric]
    return {"metric": metric, "production": measure.base, "candidate": measure.tuned, "lower_is_better": measure.lower_is_better, "all": section}


def record_decision(conn, current, candidate_run: Path, results: dict, gate: Gate, dataset: dict, out: Path) -> dict:
    """Register the candidate (parent: production) and promote or archive it, with the gate's reason, in one
    store transaction: a retrain killed at any moment leaves the registry before or after its change."""
    promoted, reason, trust, _ = settled = judge_candidate(candidate_run, gate.trust, *decide(gate, results))
    with write_transaction(conn):
        candidate = register(conn, candidate_run, current.project, parent=current.id)
        record_settled(conn, candidate.id, settled)
    record = {
        "project": current.project, "production_before": current.id, "candidate": candidate.id, "promoted": promoted,
        "reason": reason, "gate": dataclasses.asdict(gate), "checks": results, "trust": trust, "dataset": dataset,
    }  # fmt: skip
    write_json_atomic(out / "retrain.json", record)
    return record
