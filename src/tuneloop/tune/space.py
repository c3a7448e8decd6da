"""The ``tune`` section of a config: what to search, how, and for how long.

``tune.space`` maps dotted paths of training settings to a range or a list of choices::

    tune:
      trials: 12
      metric: loss                  # or a task metric scored on the validation split
      space:
        train.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
        method.r: {choices: [4, 8, 16]}
        method.name: {choices: [lora, rslora]}

A range needs a number field (``int`` fields are searched as integers); ``choices`` fit any
field. :func:`check_space` checks every entry against :class:`~tuneloop.config.RunConfig`
before any work starts, and each error names the entry's config path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuneloop.errors import ConfigError

# Settings a trial may vary: training hyperparameters. Data, model and evaluation settings fix
# what the trials are compared on, so they stay out of the space.
SEARCHABLE_SECTIONS = ("method", "train")
NOT_SEARCHABLE = {
    "method.init_from": "it names a finished run to continue, not a hyperparameter",
    "train.early_stopping_metric": "every trial early-stops on tune.metric",
    "train.early_stopping_direction": "every trial early-stops in tune.direction",
    "train.nproc": "each trial runs in one process; use tune.workers (--workers) for parallel trials",
    "train.accelerate_config": "each trial runs in one process",
    "train.threads": "threads are shared out between tune.workers",
}
LOWER_IS_BETTER = ("loss", "perplexity")


class ParamRange(BaseModel):
    """One searched setting: ``low``/``high`` (optionally ``log`` or ``step``), or ``choices``."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[bool | int | float | str] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> "ParamRange":
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("empty choices: list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give a range (low and high) or a list of choices")
        if not self.low < self.high:
            raise ValueError(f"empty range: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0 (got {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self


class TuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    trials: int = Field(20, gt=0, description="Trials to finish (complete or pruned), counting those of earlier runs on the same folder.")
    metric: str = Field(
        "loss",
        description="Validation metric the search optimises; trials early-stop on it and keep their best checkpoint: "
        "loss, perplexity, or a task metric scored on the validation split (exact_match, json_field_accuracy, accuracy, ...).",
    )
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="Optimisation direction of tune.metric: auto = minimize loss/perplexity, maximize the rest."
    )
    space: dict[str, ParamRange] = Field(
        default_factory=dict,
        description="Search space (YAML): dotted setting -> {low, high, log, step} or {choices: [...]}, "
        "e.g. train.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}.",
    )
    startup_trials: int = Field(4, ge=0, description="Trials sampled at random before TPE models the results.")
    pruner: Literal["median", "none"] = Field("median", description="Stop a trial whose validation metric is worse than the median of earlier trials at the same step.")
    pruner_startup_trials: int = Field(3, ge=0, description="Trials that must finish before any trial is pruned.")
    pruner_warmup_steps: int = Field(0, ge=0, description="Training steps of each trial before it may be pruned.")
    seed: int = Field(0, description="Seed of the sampler.")
    workers: int = Field(1, ge=1, description="Processes running trials at once, sharing the study storage.")
    storage: str | None = Field(None, description="Optuna RDB storage URL (default sqlite:///<out>/study.db); share it between machines to search together.")
    study_name: str | None = Field(None, description="Study name inside the storage (default: the project name).")


@dataclass(frozen=True)
class SearchParam:
    """One checked entry of the space; ``kind`` follows the config field's type."""

    path: str  # "train.learning_rate"
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return math.isclose(steps, round(steps), abs_tol=1e-9)


def check_space(config) -> list[SearchParam]:
    """The config's ``tune.space`` as typed parameters; ConfigError naming the first bad entry."""
    if not config.tune.space:
        raise ConfigError("tune.space: empty; declare at least one setting to search, e.g. train.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}")
    return [check_param(config, path, declared) for path, declared in config.tune.space.items()]


def check_param(config, path: str, declared: ParamRange) -> SearchParam:
    where = f"tune.space.{path}"
    annotation = searchable_field(path, where).annotation
    kind = {float: "float", int: "int"}.get(annotation, "categorical")
    if declared.choices is not None:
        values = tuple(checked_value(config, path, value, where) for value in declared.choices)
        return SearchParam(path, "categorical", choices=tuple(dict.fromkeys(values)))
    if kind == "categorical":
        raise ConfigError(f"{where}: {path} is not a number, so it takes choices: [...] rather than low/high")
    if kind == "int" and not all(float(v).is_integer() for v in (declared.low, declared.high, declared.step or 1)):
        raise ConfigError(f"{where}: {path} is an integer setting; low, high and step must be whole numbers")
    for value in (declared.low, declared.high):
        checked_value(config, path, int(value) if kind == "int" else value, where)
    return SearchParam(path, kind, declared.low, declared.high, declared.log, declared.step)


def searchable_field(path: str, where: str):
    """The pydantic field behind a dotted path, or a ConfigError saying why it cannot be searched."""
    from tuneloop.config import RunConfig

    section, _, name = path.partition(".")
    if path in NOT_SEARCHABLE:
        raise ConfigError(f"{where}: {path} cannot be searched: {NOT_SEARCHABLE[path]}")
    sections = RunConfig.model_fields
    if section in sections and section not in SEARCHABLE_SECTIONS:
        raise ConfigError(f"{where}: {section} settings cannot be searched (they fix what trials are compared on); searchable sections: {', '.join(SEARCHABLE_SECTIONS)}")
    if section not in SEARCHABLE_SECTIONS:
        raise ConfigError(f"{where}: unknown parameter {path!r}; search settings of {' or '.join(s + '.<field>' for s in SEARCHABLE_SECTIONS)}, e.g. train.learning_rate")
    fields = sections[section].annotation.model_fields
    if name not in fields:
        known = ", ".join(f"{section}.{f}" for f in fields if f"{section}.{f}" not in NOT_SEARCHABLE)
        raise ConfigError(f"{where}: unknown parameter {path!r}; {section} has: {known}")
    return fields[name]


def checked_value(config, path: str, value: Any, where: str) -> Any:
    """``value`` as the config stores it at ``path`` (validated), or a ConfigError naming ``where``."""
    from tuneloop.config import format_validation_error
    from tuneloop.methods import get_method

    try:
        applied = config_with(config, {path: value})
    except ValidationError as err:
        detail = format_validation_error(err, "x").splitlines()[1].strip()
        raise ConfigError(f"{where}: value {value!r} is not allowed ({detail})") from None
    section, _, name = path.partition(".")
    stored = getattr(getattr(applied, section), name)
    if path == "method.name":
        try:
            get_method(stored)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    return stored


def config_with(config, params: dict[str, Any], **top_level: Any):
    """A copy of ``config`` with dotted ``params`` (and top-level fields such as ``out``) set, validated."""
    raw = config.model_dump(mode="json")
    for path, value in params.items():
        section, _, name = path.partition(".")
        raw[section][name] = value
    raw.update(top_level)
    return type(config).model_validate(raw)


def default_params(config, params: list[SearchParam]) -> dict[str, Any] | None:
    """The config's own values of the searched settings, or None when one lies outside the space."""
    values = {}
    for param in params:
        section, _, name = param.path.partition(".")
        values[param.path] = getattr(getattr(config, section), name)
        if not param.contains(values[param.path]):
            return None
    return values


def resolve_direction(metric: str, direction: str) -> str:
    """'minimize' or 'maximize' for ``metric``; ``auto`` minimises loss and perplexity only."""
    if direction != "auto":
        return direction
    return "minimize" if metric in LOWER_IS_BETTER else "maximize"
