"""The ``tune`` section of a config: what to search, how, and for how long.

``tune.space`` maps dotted paths of training settings to a range or a list of choices::

    tune:
      trials: 12
      metric: auto                  # the task's headline metric; or loss, or any task metric (validation split)
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

from pydantic import ValidationError

from tuneloop.config import ParamRange, RunConfig, format_validation_error, method_section_for, method_setting_fields
from tuneloop.errors import ConfigError
from tuneloop.methods import get_method
from tuneloop.text.metrics import LOWER_IS_BETTER

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
    """The config's ``tune.space`` as typed parameters (the method's default space when it declares
    none, see :meth:`tuneloop.methods.Method.search_space`); ConfigError naming the first bad entry."""
    return [check_param(config, path, declared) for path, declared in search_space(config).items()]


def search_space(config) -> dict[str, ParamRange]:
    """``tune.space``, or the learning rate around the method's usual one and its capacity settings."""
    if config.tune.space:
        return config.tune.space
    return {path: ParamRange(**entry) for path, entry in get_method(config.method.name).search_space().items()}


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
    section, _, name = path.partition(".")
    if path in NOT_SEARCHABLE:
        raise ConfigError(f"{where}: {path} cannot be searched: {NOT_SEARCHABLE[path]}")
    sections = RunConfig.model_fields
    if section in sections and section not in SEARCHABLE_SECTIONS:
        raise ConfigError(f"{where}: {section} settings cannot be searched (they fix what trials are compared on); searchable sections: {', '.join(SEARCHABLE_SECTIONS)}")
    if section not in SEARCHABLE_SECTIONS:
        raise ConfigError(f"{where}: unknown parameter {path!r}; search settings of {' or '.join(s + '.<field>' for s in SEARCHABLE_SECTIONS)}, e.g. train.learning_rate")
    fields = {f: info for f, (info, _) in method_setting_fields().items()} if section == "method" else sections[section].annotation.model_fields
    if name not in fields:
        known = ", ".join(f"{section}.{f}" for f in fields if f"{section}.{f}" not in NOT_SEARCHABLE)
        raise ConfigError(f"{where}: unknown parameter {path!r}; {section} has: {known}")
    return fields[name]


def checked_value(config, path: str, value: Any, where: str) -> Any:
    """``value`` as the config stores it at ``path`` (validated), or a ConfigError naming ``where``."""

    try:
        applied = config_with(config, {path: value})
    except ConfigError as err:  # an unknown method.name
        raise ConfigError(f"{where}: {err}") from None
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
    if "method.name" in params:  # another method keeps only the settings it has
        raw["method"] = method_section_for(params["method.name"], raw["method"])
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
