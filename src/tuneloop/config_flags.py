"""Every field of :class:`~tuneloop.config.RunConfig` as a command-line flag.

Flags are generated from the schema, so a new config field is a new flag with its description
as help. A field's flag is ``--<field>`` when the name is unique across sections, otherwise
``--<section>-<field>``, as it always is for an objective's own section (``--dpo-beta``, ``--ppo-clip-range``);
a few aliases read naturally (``--model``, ``--data``, ``--val-data``, ``--test-data``, ``--method``,
``--lr``, ``--max-new-tokens``). Values given on the command line override the YAML file.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from collections import Counter

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tuneloop.config import OBJECTIVE_SECTIONS, method_setting_fields
from tuneloop.errors import ConfigError
from tuneloop.methods import METHODS

ALIASES = {
    "model.name": "model",
    "data.path": "data",
    "data.val_path": "val_data",
    "data.test_path": "test_data",
    "method.name": "method",
    "train.learning_rate": "lr",
    "eval.max_new_tokens": "max_new_tokens",  # its flag before ppo and grpo had a max_new_tokens of their own
}


@dataclass(frozen=True)
class ConfigFlag:
    dotted: str  # "train.epochs"
    flag: str  # "epochs"
    annotation: typing.Any
    help: str


def config_flags(config_class, without: tuple[str, ...] = ()) -> list[ConfigFlag]:
    """One flag per leaf field, leaving out the sections in ``without`` (``train`` has no use for ``tune``).

    Flag names are chosen over all sections, so a field has the same flag in every command.
    """
    leaves = list(_leaf_fields(config_class))
    counts = Counter(name.rsplit(".", 1)[-1] for name, _ in leaves)
    flags = []
    for dotted, field in leaves:
        if dotted.split(".", 1)[0] in without:
            continue
        leaf = dotted.rsplit(".", 1)[-1]
        prefixed = counts[leaf] > 1 or dotted.split(".", 1)[0] in OBJECTIVE_SECTIONS
        flag = ALIASES.get(dotted) or (dotted.replace(".", "-") if prefixed else leaf)
        default = "" if field.default is None or callable(field.default_factory) else f" [default: {field.default}]"
        flags.append(ConfigFlag(dotted, flag.replace("_", "-"), field.annotation, (field.description or "") + default))
    return flags


def _leaf_fields(config_class, prefix: str = ""):
    for name, field in config_class.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("yaml_only"):
            continue  # a list of sections has no sensible flag
        if prefix == "" and name == "method":  # one settings model per method: every setting, saying whose
            yield from _method_fields()
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _leaf_fields(field.annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def _method_fields():
    every = len(METHODS)
    for name, (field, takers) in method_setting_fields().items():
        if name == "name":
            field = FieldInfo(annotation=str, default="lora", description="Fine-tuning method: " + ", ".join(METHODS) + ".")
        elif len(takers) < every:
            field = FieldInfo.merge_field_infos(field, description=f"{field.description} (method {', '.join(takers)})")
        yield f"method.{name}", field


def click_options(flags: list[ConfigFlag]):
    import click

    options = []
    for flag in flags:
        kind = _base_type(flag.annotation)
        param = flag.dotted.replace(".", "__")
        if kind is bool:
            options.append(click.Option([f"--{flag.flag}/--no-{flag.flag}", param], default=None, help=flag.help))
        elif kind is list and flag.dotted == "data.path":
            options.append(click.Option([f"--{flag.flag}", param], multiple=True, help=flag.help + " Repeat for several files."))
        elif kind is dict and _holds_sections(flag.annotation):
            options.append(click.Option([f"--{flag.flag}", param], multiple=True, help=_entries_help(flag)))
        else:
            click_type = {int: click.INT, float: click.FLOAT}.get(kind, click.STRING)
            options.append(click.Option([f"--{flag.flag}", param], type=click_type, default=None, help=_help_for(kind, flag.help)))
    return options


def _holds_sections(annotation) -> bool:
    """A mapping whose values are settings of their own (``tune.space``: setting -> ParamRange)."""
    value_type = typing.get_args(annotation)[-1] if typing.get_args(annotation) else None
    return isinstance(value_type, type) and issubclass(value_type, BaseModel)


def _entries_help(flag: ConfigFlag) -> str:
    example = (
        f"--{flag.flag} 'train.learning_rate={{low: 1.0e-4, high: 1.0e-2, log: true}}' --{flag.flag} 'method.r={{choices: [4, 8]}}'"
        if flag.dotted == "tune.space"
        else f"--{flag.flag} 'KEY={{field: value}}'"
    )
    return f"{flag.help} As flags, one KEY={{YAML mapping}} per entry, repeated: {example}; they replace the config file's whole mapping."


def _help_for(kind, text: str) -> str:
    if kind is dict:
        return text + " Given as key=value,key=value."
    if kind is list:
        return text + " Given comma-separated."
    return text


def _base_type(annotation):
    """bool/int/float/str/list/dict for the annotations the config uses."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is typing.Literal:
        return str
    if origin in (list, dict):
        return origin
    return annotation if annotation in (bool, int, float, str) else str


def overrides_from_params(flags: list[ConfigFlag], params: dict) -> dict:
    """Click parameter values -> dotted overrides for :func:`tuneloop.config.load_config`."""
    overrides = {}
    for flag in flags:
        value = params.get(flag.dotted.replace(".", "__"))
        if value is None or value == ():
            continue
        if _holds_sections(flag.annotation):
            overrides[flag.dotted] = parse_entries(value, f"--{flag.flag}")
            continue
        overrides[flag.dotted] = _parse_value(_base_type(flag.annotation), value, flag.dotted)
    return overrides


def _parse_value(kind, value, dotted: str):
    if dotted == "method.target_modules":
        return [part.strip() for part in value.split(",")] if "," in value else value
    if kind is list and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if kind is list:
        return list(value)
    if kind is dict:
        return parse_mapping(value, dotted)
    return value


def parse_mapping(text: str, what: str = "columns") -> dict[str, str]:
    """'prompt=question,completion=answer' -> {'prompt': 'question', 'completion': 'answer'}."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"{what}: expected key=value pairs separated by commas, got {part!r}")
        key, value = part.split("=", 1)
        mapping[key.strip()] = value.strip()
    return mapping


def parse_entries(entries, flag: str) -> dict[str, dict]:
    """``('train.learning_rate={low: 1.0e-4, high: 1.0e-2}', 'method.r: {choices: [4, 8]}')`` -> one mapping
    per key: each entry is KEY=, or KEY: as in the YAML file, followed by a YAML flow mapping."""
    import yaml

    parsed = {}
    for entry in entries:
        key, sep, body = entry.partition("=")
        try:
            value = yaml.safe_load(body) if sep else yaml.safe_load(entry)
        except yaml.YAMLError as err:
            raise ConfigError(f"{flag} {entry!r}: not a YAML mapping ({getattr(err, 'problem', None) or err})") from None
        if not sep:  # KEY: {...}, one entry of the YAML mapping
            key, value = next(iter(value.items())) if isinstance(value, dict) and len(value) == 1 else ("", None)
        if not isinstance(value, dict) or not str(key).strip():
            raise ConfigError(f"{flag} {entry!r}: expected KEY={{...}}, e.g. {flag} 'train.learning_rate={{low: 1.0e-4, high: 1.0e-2, log: true}}'")
        parsed[str(key).strip()] = value
    return parsed
