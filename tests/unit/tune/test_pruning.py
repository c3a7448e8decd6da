"""The pruning hook: validation values reach the trial, and a prune verdict stops training cleanly."""

from __future__ import annotations

from types import SimpleNamespace

from transformers import TrainerControl

from tuneloop.config import RunConfig
from tuneloop.tune.study import PruneOnValidation, trial_config


class FakeTrial:
    def __init__(self, prune_after: int):
        self.reported: list[tuple[float, int]] = []
        self.prune_after = prune_after

    def report(self, value, step):
        self.reported.append((value, step))

    def should_prune(self):
        return len(self.reported) >= self.prune_after


def evaluate(callback, step: int, metrics: dict) -> TrainerControl:
    control = TrainerControl()
    callback.on_evaluate(None, SimpleNamespace(global_step=step), control, metrics=metrics)
    return control


def test_values_are_reported_and_a_prune_verdict_stops_training():
    trial = FakeTrial(prune_after=2)
    callback = PruneOnValidation(trial, "eval_accuracy")
    assert not evaluate(callback, 10, {"eval_loss": 1.0, "eval_accuracy": 0.5}).should_training_stop
    assert evaluate(callback, 20, {"eval_loss": 0.9, "eval_accuracy": 0.4}).should_training_stop
    assert trial.reported == [(0.5, 10), (0.4, 20)] and callback.pruned_at == 20


def test_the_default_trial_reports_but_is_never_pruned():
    trial = FakeTrial(prune_after=1)
    callback = PruneOnValidation(trial, "eval_loss", enabled=False)
    assert not evaluate(callback, 5, {"eval_loss": 3.0}).should_training_stop
    assert trial.reported == [(3.0, 5)] and callback.pruned_at is None


def test_other_logs_are_ignored():
    trial = FakeTrial(prune_after=1)
    callback = PruneOnValidation(trial, "eval_exact_match")
    assert not evaluate(callback, 5, {"eval_loss": 3.0}).should_training_stop
    assert trial.reported == []


def test_trials_early_stop_on_the_searched_metric_in_its_direction():
    config = RunConfig.model_validate({"tune": {"metric": "json_field_accuracy", "workers": 2}})
    trial = trial_config(config, {"method.r": 8}, "runs/x/trials/003")
    assert trial.train.early_stopping_metric == "json_field_accuracy"
    assert trial.train.early_stopping_direction == "maximize"
    assert (trial.method.r, trial.out) == (8, "runs/x/trials/003")
    assert trial.train.threads >= 1  # the cores are shared between the workers
