"""The search, top to bottom: check -> open (or resume) the study -> run trials -> retrain the best -> test once.

Each trial is an ordinary ``tuneloop train`` run under ``<out>/trials/<number>``, scored on the
validation split only (its best value of ``tune.metric``; the checkpoint kept is the best one).
A TrainerCallback reports every validation value to Optuna's pruner, which can stop a trial
that is doing worse than earlier ones at the same step. The study lives in an Optuna RDB storage
(``<out>/study.db`` by default), so a killed search continues where it stopped and several
worker processes can share it. Only the winning configuration ever touches the test split.

Layout of ``<out>``::

    tune_config.yaml  study.db  trials/000/ ...  best/ (the retrained winner, evaluated)
    tune.json  trials.md  trials.json  importance.png  history.png  intermediate.png
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from transformers import TrainerCallback

from tuneloop.atomic import write_json_atomic, write_text_atomic
from tuneloop.config import RunConfig, dump_config, load_config
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.evaluate.heldout import evaluate_run
from tuneloop.objectives import get_task
from tuneloop.progress import console, quiet_libraries
from tuneloop.runs.folder import RunDir
from tuneloop.train.prepare import PreparedData, prepare_dataset
from tuneloop.train.run import train
from tuneloop.tune.report import write_outputs
from tuneloop.tune.optuna_setup import optuna_warnings_quiet, storage_url
from tuneloop.tune.space import SearchParam, check_space, config_with, default_params, resolve_direction

SETTINGS_OF_THE_RUN = ("tune.trials", "tune.workers")  # may change when a study is resumed


def tune(config: RunConfig, origin: str = "config") -> dict:
    """Search ``config.tune.space``; returns the summary written to ``<out>/tune.json``.

    ``origin`` (the config file) is named in errors about the search space.

    >>> summary = tune(load_config("docs/results/tune_demo/tune_demo.yaml"))  # doctest: +SKIP
    """
    try:
        params = check_space(config)
    except ConfigError as err:
        raise ConfigError(f"invalid search space in {origin}: {err}") from None
    config = with_metric_resolved(config, check_trials_can_run(config))
    out = tune_out_dir(config)
    check_same_study(out, config)
    with study_lock(out):
        write_text_atomic(out / "tune_config.yaml", dump_config(config.model_copy(update={"out": str(out)})))
        study, storage = open_study(config, out)
        fail_interrupted_trials(study, storage)
        enqueue_default(study, config, params)
        run_trials(config, out, params)
        best = best_run(study, config, out, params)
        return write_outputs(study, config, out, params, best)


def tune_out_dir(config: RunConfig) -> Path:
    return Path(config.out) if config.out else Path("runs") / config.project / "tune"


def check_trials_can_run(config: RunConfig) -> PreparedData:
    """What would only fail mid-study (no validation split, bad data, several processes per trial); returns the data."""
    if config.train.nproc != 1:
        raise ConfigError("train.nproc: each trial trains in one process; run trials side by side with tune.workers (--workers) instead")
    if config.train.dp_epsilon is not None:
        raise ConfigError(
            "train.dp_epsilon: every trial would spend its epsilon on the same training rows, so the search as a whole "
            "is not (epsilon, delta)-private; search without DP on other data, then train once with train.dp_epsilon"
        )
    if config.data.val_fraction <= 0 and not config.data.val_path:
        raise ConfigError("data.val_fraction: the search scores trials on the validation split; set it above 0 or give data.val_path")
    task = get_task(config.task)
    task.check_config(config)
    task.check_model(config.model)
    data = prepare_dataset(config.data, task.load_tokenizer(config.model), task)
    if not data.val_tokens:
        raise ConfigError("data.val_fraction: the validation split came out empty; raise it or add rows")
    return data


def with_metric_resolved(config: RunConfig, data: PreparedData) -> RunConfig:
    """``tune.metric`` auto -> the task's headline metric on this data (the name is recorded in the study's config)."""
    if config.tune.metric != "auto":
        return config
    references = [example.target_text for example in data.splits.val]
    metric = get_task(config.task).primary_metric(config.eval.primary, references)
    return config_with(config, {"tune.metric": metric})


def check_same_study(out: Path, config: RunConfig) -> None:
    """A folder holds one study: resuming it with other settings would mix incomparable trials."""
    if not out.exists() or not any(out.iterdir()):
        return
    recorded_path = out / "tune_config.yaml"
    if not recorded_path.is_file():
        raise TuneloopError(f"{out} exists and holds no tuneloop study (no tune_config.yaml); choose another --out")
    recorded = flatten(load_config(recorded_path).model_dump(mode="json"))
    current = flatten(config.model_copy(update={"out": str(out)}).model_dump(mode="json"))
    changed = sorted(k for k in recorded.keys() | current.keys() if recorded.get(k) != current.get(k) and k not in SETTINGS_OF_THE_RUN)
    if changed:
        raise TuneloopError(
            f"{out} holds a study started with other settings (differs at: {', '.join(changed)}); "
            "restore them to resume it, or choose another --out for a new study"
        )


def flatten(raw: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in raw.items():
        if isinstance(value, dict) and key != "space":
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return flat


@contextlib.contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """One ``tuneloop tune`` per folder at a time (its workers share the study, other commands wait their turn)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".tune.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TuneloopError(f"another `tuneloop tune` is running on {out}; wait for it or choose another --out") from None
        yield


def open_study(config: RunConfig, out: Path):
    """The study (created on first use, loaded afterwards) and its storage."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url(config, out))
    study = optuna.create_study(
        storage=storage,
        study_name=config.tune.study_name or config.project,
        direction=resolve_direction(config.tune.metric, config.tune.direction),
        sampler=optuna.samplers.TPESampler(n_startup_trials=config.tune.startup_trials, seed=config.tune.seed),
        pruner=make_pruner(config),
        load_if_exists=True,
    )
    return study, storage


def make_pruner(config: RunConfig):
    import optuna

    if config.tune.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=config.tune.pruner_startup_trials, n_warmup_steps=config.tune.pruner_warmup_steps)


def fail_interrupted_trials(study, storage) -> None:
    """Trials left RUNNING by a killed search are marked failed; the search runs others in their place."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def enqueue_default(study, config: RunConfig, params: list[SearchParam]) -> None:
    """A new study first tries the config's own settings, so the winner is measured against them."""
    defaults = default_params(config, params)
    if not study.trials and defaults is not None:
        study.enqueue_trial(defaults, user_attrs={"default": True})


def trial_count(study, *states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_trials(config: RunConfig, out: Path, params: list[SearchParam]) -> None:
    """Trials until ``tune.trials`` have finished (complete or pruned), in ``tune.workers`` processes."""
    workers, raw = config.tune.workers, config.model_dump(mode="json")
    if workers == 1:
        run_worker(raw, str(out))
        return
    # Enqueued trials (the config's own settings) run here first: on SQLite, which has no row locks,
    # two workers can pop the same waiting trial and train into one folder.
    run_worker(raw, str(out), waiting_only=True)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_worker, args=(raw, str(out))) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise TuneloopError(f"{len(failed)} of {workers} tune workers stopped with an error (exit codes {failed}); see the messages above")


def run_worker(raw_config: dict, out: str, waiting_only: bool = False) -> None:
    """One worker: loads the shared study and runs trials until the study has enough (or, with
    ``waiting_only``, only its enqueued trials)."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    quiet_libraries()  # a spawned worker starts without the parent's warning filters
    config = RunConfig.model_validate(raw_config)
    study, _ = open_study(config, Path(out))
    remaining = config.tune.trials - trial_count(study, TrialState.COMPLETE, TrialState.PRUNED)
    if waiting_only:
        remaining = min(remaining, trial_count(study, TrialState.WAITING))
    if remaining <= 0:
        return
    objective = TrialObjective(config, Path(out), check_space(config))
    stop_at_target = MaxTrialsCallback(config.tune.trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    with optuna_warnings_quiet():
        study.optimize(objective, n_trials=remaining, callbacks=[stop_at_target], gc_after_trial=True)


class TrialObjective:
    """One trial: the sampled settings -> a training run in ``trials/<number>`` -> its best validation value."""

    def __init__(self, config: RunConfig, out: Path, params: list[SearchParam]):
        self.config, self.out, self.params = config, out, params

    def __call__(self, trial) -> float:
        import optuna

        values = {param.path: param.suggest(trial) for param in self.params}
        config = trial_config(self.config, values, self.out / "trials" / f"{trial.number:03d}")
        console().rule(f"trial {trial.number}: " + ", ".join(f"{k}={format_value(v)}" for k, v in values.items()))
        trial.set_user_attr("run", config.out)
        pruning = PruneOnValidation(trial, f"eval_{self.config.tune.metric}", enabled=not trial.user_attrs.get("default"))
        run = train(config, callbacks=(pruning,))
        shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the kept (best) weights are in the run
        summary = RunDir(run).train_summary()
        trial.set_user_attr("steps", summary["steps"])
        trial.set_user_attr("train_seconds", summary["seconds"])
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at step {pruning.pruned_at}")
        best = summary["best_metric"]["value"]
        if best is None:
            raise TuneloopError(
                f"trial {trial.number} ended without a validation score; make train.eval_steps at most the steps a trial trains"
            )
        return float(best)


def trial_config(config: RunConfig, values: dict[str, Any], out: Path) -> RunConfig:
    """The base config with a trial's settings; it early-stops and keeps its checkpoint on ``tune.metric``."""
    fixed = {
        "train.early_stopping_metric": config.tune.metric,
        "train.early_stopping_direction": resolve_direction(config.tune.metric, config.tune.direction),
    }
    if config.train.threads == 0 and config.tune.workers > 1:
        fixed["train.threads"] = max(1, (os.cpu_count() or 1) // config.tune.workers)
    return config_with(config, {**values, **fixed}, out=str(out))


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class PruneOnValidation(TrainerCallback):
    """Reports each validation value to the trial; when Optuna's pruner says so, training stops early.

    Training ends through the Trainer's own stop flag (the run is still saved cleanly); the
    objective then raises ``optuna.TrialPruned``.
    """

    def __init__(self, trial, metric_key: str, enabled: bool = True):
        self.trial, self.metric_key, self.enabled = trial, metric_key, enabled
        self.pruned_at: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or self.metric_key not in metrics:
            return
        self.trial.report(float(metrics[self.metric_key]), state.global_step)
        if self.enabled and self.trial.should_prune():
            self.pruned_at = state.global_step
            control.should_training_stop = True


def best_run(study, config: RunConfig, out: Path, params: list[SearchParam]) -> dict:
    """The best trial's settings retrained as a normal run in ``<out>/best`` and evaluated once on the test split.

    A finished ``best/`` for the same trial is reused, so re-running a finished search does not
    look at the test split again.
    """
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TuneloopError(f"no trial of the study in {out} completed (all pruned or failed); nothing to retrain")
    trial = study.best_trial
    folder = out / "best"
    recorded = folder / "tune_trial.json"
    best = RunDir(folder)
    if recorded.is_file() and json.loads(recorded.read_text())["trial"] == trial.number and best.has_metrics():
        return {"trial": trial.number, "run": str(folder), "metrics": best.metrics()}
    shutil.rmtree(folder, ignore_errors=True)  # an older winner, or a retrain cut short
    console().rule(f"retraining the best configuration (trial {trial.number}) and evaluating it once on the test split")
    train(trial_config(config, trial.params, folder))
    metrics = evaluate_run(folder)
    write_json_atomic(recorded, {"trial": trial.number, "params": trial.params})
    return {"trial": trial.number, "run": str(folder), "metrics": metrics}
