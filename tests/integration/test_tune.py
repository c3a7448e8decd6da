"""``tuneloop tune`` end to end on the tiny model: bad spaces, a whole study, resume, pruning, kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli


def tune_yaml(tmp_path: Path, model_dir: Path, data: Path, space: dict, **tune) -> Path:
    """A search over ``space`` on the toy data, each trial a few steps of the tiny model, on validation loss
    (the tiny model's generated answers score about 0 whatever its settings)."""
    config = {
        "project": "toy",
        "model": {"name": str(model_dir)},
        "data": {"path": [str(data)], "format": "chat", "val_fraction": 0.2, "test_fraction": 0.2},
        "method": {"r": 4},
        "train": {"learning_rate": 5e-3, "tokens_per_batch": 256, "pack_length": 128, "max_steps": 6, "eval_steps": 2, "early_stopping_patience": 0, "threads": 1},
        "eval": {"max_new_tokens": 4},
        "tune": {"trials": 3, "pruner_startup_trials": 1, "metric": "loss", **tune, "space": space},
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


LR_AND_RANK = {"train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "method.r": {"choices": [2, 4]}}


def trials_of(out: Path) -> list[dict]:
    import optuna

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{out / 'study.db'}")
    return [{"number": t.number, "state": t.state.name, "params": t.params, "attrs": t.user_attrs} for t in study.trials]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"train.learning_rate": {"low": 1e-2, "high": 1e-3}}, "empty range"),
        ({"method.r": {"choices": []}}, "empty choices"),
        ({"train.learnin_rate": {"low": 1e-4, "high": 1e-2}}, "unknown parameter 'train.learnin_rate'"),
        ({"optimizer.beta": {"low": 0.8, "high": 0.99}}, "unknown parameter 'optimizer.beta'"),
        ({"data.seed": {"choices": [0, 1]}}, "data settings cannot be searched"),
        ({"method.r": {"low": 0, "high": 8}}, "value 0 is not allowed"),
        ({"method.name": {"choices": ["lora", "lorax"]}}, "unknown method 'lorax'"),
        ({"method.name": {"low": 1, "high": 2}}, "takes choices"),
    ],
    ids=["empty-range", "empty-choices", "unknown-field", "unknown-section", "data", "out-of-bounds", "unknown-method", "range-on-text"],
)
def test_bad_search_space_is_refused_before_anything_is_written(tiny_model_dir, toy_chat_file, tmp_path, entry, message):
    config = tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, entry)
    out = tmp_path / "study"
    result = run_cli("tune", str(config), "--out", str(out))
    assert result.exit_code == 2, result.output
    path = next(iter(entry))
    assert f"tune.space.{path}" in result.output and message in result.output and str(config) in result.output, result.output
    assert not out.exists()


def test_study_finds_settings_writes_outputs_and_tests_once(tiny_model_dir, toy_chat_file, tmp_path, monkeypatch):
    import tuneloop.tune.study as study

    evaluated = []
    real_evaluate = study.evaluate_run
    monkeypatch.setattr(study, "evaluate_run", lambda run, *a, **k: evaluated.append(Path(run)) or real_evaluate(run, *a, **k))
    out = tmp_path / "study"
    result = run_cli("tune", str(tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, LR_AND_RANK)), "--out", str(out))
    assert result.exit_code == 0, result.output

    assert evaluated == [out / "best"]  # the test split, once, for the winner only
    for name in ("tune.json", "trials.md", "trials.json", "history.png", "intermediate.png", "best/metrics.json", "best/adapter/adapter_config.json"):
        assert (out / name).is_file(), name
    trial_runs = sorted((out / "trials").iterdir())
    assert len(trial_runs) == 3 and not any((run / "metrics.json").exists() for run in trial_runs)
    summary = json.loads((out / "tune.json").read_text())
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 3
    assert summary["default"]["trial"] == 0 and summary["default"]["params"] == {"train.learning_rate": 5e-3, "method.r": 4}
    values = [row["value"] for row in json.loads((out / "trials.json").read_text()) if row["state"] == "complete"]
    assert summary["best"]["value"] == min(values)
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert summary["test"]["tuned"] == metrics["tuned"][metrics["primary"]]
    retrained = json.loads((out / "best" / "train.json").read_text())
    assert retrained["best_metric"]["value"] == pytest.approx(summary["best"]["value"], rel=1e-5)  # same seed, same run
    assert "validation loss" in result.output and f"trial {summary['best']['trial']}" in result.output


def test_rerun_with_more_trials_resumes_the_study(tiny_model_dir, toy_chat_file, tmp_path):
    config = tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, LR_AND_RANK, pruner="none")
    out = tmp_path / "study"
    assert run_cli("tune", str(config), "--out", str(out), "--trials", "2").exit_code == 0
    first = trials_of(out)
    stamps = {run.name: (run / "train.json").stat().st_mtime_ns for run in (out / "trials").iterdir()}

    result = run_cli("tune", str(config), "--out", str(out), "--trials", "4")
    assert result.exit_code == 0, result.output
    trials = trials_of(out)
    assert [t["number"] for t in trials] == [0, 1, 2, 3] and all(t["state"] == "COMPLETE" for t in trials)
    assert trials[:2] == first
    assert {name: (out / "trials" / name / "train.json").stat().st_mtime_ns for name in stamps} == stamps


def test_resume_with_other_settings_is_refused(tiny_model_dir, toy_chat_file, tmp_path):
    config = tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, {"method.r": {"choices": [2, 4]}}, trials=1)
    out = tmp_path / "study"
    assert run_cli("tune", str(config), "--out", str(out)).exit_code == 0
    result = run_cli("tune", str(config), "--out", str(out), "--max-steps", "4")
    assert result.exit_code == 2 and "train.max_steps" in result.output, result.output


def test_pruner_stops_a_trial_that_lags_behind(tiny_model_dir, toy_chat_file, tmp_path):
    # The default learning rate learns; a tiny one barely moves the loss and is pruned at its first evaluation.
    space = {"train.learning_rate": {"choices": [5e-3, 1e-7]}}
    config = tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, space, trials=4, startup_trials=4)
    out = tmp_path / "study"
    result = run_cli("tune", str(config), "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "trials.json").read_text())
    pruned = [row for row in rows if row["state"] == "pruned"]
    assert pruned and all(row["params"]["train.learning_rate"] == 1e-7 for row in pruned)
    assert all(row["last_step"] == 2 for row in pruned)  # stopped at the first evaluation, not after 6 steps
    assert all(row["state"] == "complete" for row in rows if row["params"]["train.learning_rate"] == 5e-3)


KILL_AFTER_TRIAL_STARTS = """
import sys
from tuneloop.cli import main
sys.argv = ["tuneloop", "tune", {config!r}, "--out", {out!r}]
main()
"""


def test_study_killed_mid_trial_resumes_and_completes(tiny_model_dir, toy_chat_file, tmp_path):
    config = tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, LR_AND_RANK, trials=2, pruner="none")
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    script = KILL_AFTER_TRIAL_STARTS.format(config=str(config), out=str(out))
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "trials" / "001").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (out / "trials" / "000" / "train.json").exists() and not (out / "trials" / "001" / "train.json").exists()

    result = run_cli("tune", str(config), "--out", str(out))
    assert result.exit_code == 0, result.output
    trials = trials_of(out)
    assert [t["state"] for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1]["attrs"]["interrupted"] is True
    assert "interrupted" in (out / "trials.md").read_text()


def classify_flags(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--task", "classify", "--model", str(model_dir), "--data", str(data), "--format", "label", "--r", "4",
        "--lr", "5e-3", "--max-steps", "30", "--eval-steps", "2", "--tokens-per-batch", "256", "--val-fraction", "0.2",
        "--test-fraction", "0.25", "--threads", "1", "--out", str(out), *extra,
    ]  # fmt: skip


def test_early_stopping_on_accuracy_keeps_the_most_accurate_checkpoint(tiny_bert_dir, tmp_path):
    from safetensors.torch import load_file

    from helpers import toy_label_rows, write_jsonl

    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "run"
    flags = ("--early-stopping-metric", "accuracy", "--early-stopping-patience", "3")
    result = run_cli(*classify_flags(tiny_bert_dir, data, out, *flags))
    assert result.exit_code == 0, result.output

    evals = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "eval_accuracy" in r]
    best = max(evals, key=lambda r: r["eval_accuracy"])  # the first of equally accurate checkpoints
    summary = json.loads((out / "train.json").read_text())
    assert summary["best_metric"] == {"name": "eval_accuracy", "value": best["eval_accuracy"]}
    assert summary["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    # stopped 3 evaluations after the best one, although the loss kept falling
    assert summary["steps"] == best["step"] + 3 * 2 < 30
    assert min(evals, key=lambda r: r["eval_loss"])["step"] != best["step"]
    saved = load_file(out / "adapter" / "adapter_model.safetensors")
    kept = load_file(Path(summary["best_checkpoint"]) / "adapter_model.safetensors")
    last = load_file(out / "checkpoints" / f"checkpoint-{summary['steps']}" / "adapter_model.safetensors")
    assert all((saved[k] == kept[k]).all() for k in saved)
    assert any((saved[k] != last[k]).any() for k in saved)


def test_unknown_early_stopping_metric_is_refused_before_the_run_folder(tiny_bert_dir, tmp_path):
    from helpers import toy_label_rows, write_jsonl

    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "run"
    result = run_cli(*classify_flags(tiny_bert_dir, data, out, "--early-stopping-metric", "exact_match"))
    assert result.exit_code == 2, result.output
    assert "train.early_stopping_metric" in result.output and "accuracy" in result.output and "macro_f1" in result.output
    assert not out.exists()


def test_study_on_a_task_metric_maximises_it(tiny_bert_dir, tmp_path):
    from helpers import toy_label_rows, write_jsonl

    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    config = {
        "project": "toy", "task": "classify", "model": {"name": str(tiny_bert_dir)},
        "data": {"path": [str(data)], "format": "label", "val_fraction": 0.2, "test_fraction": 0.25},
        "method": {"r": 4},
        "train": {"learning_rate": 5e-3, "tokens_per_batch": 256, "max_steps": 8, "eval_steps": 2, "threads": 1},
        "tune": {"trials": 2, "metric": "macro_f1", "space": {"train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}},
    }  # fmt: skip
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "study"
    result = run_cli("tune", str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tune.json").read_text())
    assert summary["metric"] == "validation macro_f1" and summary["direction"] == "maximize"
    rows = json.loads((out / "trials.json").read_text())
    assert summary["best"]["value"] == max(row["value"] for row in rows if row["state"] == "complete")
    for row in rows:
        trained = json.loads((Path(row["run"]) / "train.json").read_text())
        assert trained["best_metric"] == {"name": "eval_macro_f1", "value": row["value"]}


def test_workers_share_one_study(tiny_model_dir, toy_chat_file, tmp_path):
    config = tune_yaml(tmp_path, tiny_model_dir, toy_chat_file, LR_AND_RANK, trials=2, workers=2, pruner="none")
    out = tmp_path / "study"
    result = run_cli("tune", str(config), "--out", str(out))
    assert result.exit_code == 0, result.output
    trials = trials_of(out)
    # each worker may start one trial before it sees the target reached, never more
    assert 2 <= sum(t["state"] == "COMPLETE" for t in trials) == len(trials) <= 3
    assert len({t["attrs"]["run"] for t in trials}) == len(trials)
    assert sum(bool(t["attrs"].get("default")) for t in trials) == 1  # the config's own settings ran once, not per worker
    assert (out / "best" / "metrics.json").is_file()


def test_search_optimises_the_tasks_headline_metric_by_default(tiny_bert_dir, tmp_path):
    from helpers import toy_label_rows, write_jsonl

    data = write_jsonl(tmp_path / "tickets.jsonl", toy_label_rows())
    out = tmp_path / "study"
    flags = classify_flags(tiny_bert_dir, data, out, "--max-steps", "4", "--trials", "1", "--space", "method.r={choices: [4]}")
    result = run_cli("tune", *flags[1:])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tune.json").read_text())
    assert (summary["metric"], summary["direction"]) == ("validation accuracy", "maximize")
    trial = json.loads((out / "trials" / "000" / "train.json").read_text())
    assert trial["best_metric"]["name"] == "eval_accuracy"
    assert yaml.safe_load((out / "tune_config.yaml").read_text())["tune"]["metric"] == "accuracy"
