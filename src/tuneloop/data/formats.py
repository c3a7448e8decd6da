"""One normaliser per row format: raw fields -> :class:`~tuneloop.data.schema.Example`.

A normaliser raises :class:`RowError` naming the field when a row cannot be used; the caller
records it with file and line and moves on. ``cfg.columns`` maps a format's canonical field
to the file's column name.
"""

from __future__ import annotations

import json
import string
from typing import Callable

from tuneloop.config import DataConfig
from tuneloop.data.schema import ROLES, Example

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class RowError(Exception):
    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def column(fields: dict, cfg: DataConfig, name: str, required: bool = True):
    key = cfg.columns.get(name, name)
    value = fields.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError(key, "missing" if value is None else "empty")
        return None
    return value


def text_column(fields: dict, cfg: DataConfig, name: str, required: bool = True) -> str | None:
    value = column(fields, cfg, name, required)
    return None if value is None else str(value).strip()


def with_system(messages: list[dict], cfg: DataConfig) -> tuple[dict, ...]:
    if cfg.system_prompt and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": cfg.system_prompt}, *messages]
    return tuple(messages)


def check_conversation(messages: list[dict], field: str) -> list[dict]:
    if not messages:
        raise RowError(field, "empty conversation")
    for turn in messages:
        if turn["role"] not in ROLES:
            raise RowError(field, f"unknown role {turn['role']!r}")
        if not turn["content"].strip():
            raise RowError(field, f"empty {turn['role']} turn")
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError(field, "no assistant turn")
    if messages[-1]["role"] != "assistant":
        raise RowError(field, "conversation does not end with an assistant turn")
    return messages


def parse_turns(value, field: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RowError(field, f"not a JSON list of turns: {err.msg}") from None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RowError(field, "expected a list of turns")
    return value


def chat(fields: dict, cfg: DataConfig) -> Example:
    key = cfg.columns.get("messages", "messages")
    turns = parse_turns(column(fields, cfg, "messages"), key)
    messages = [{"role": str(t.get("role", "")), "content": str(t.get("content") or "")} for t in turns]
    return Example("", 0, messages=with_system(check_conversation(messages, key), cfg))


def sharegpt(fields: dict, cfg: DataConfig) -> Example:
    key = cfg.columns.get("conversations", "conversations")
    turns = parse_turns(column(fields, cfg, "conversations"), key)
    messages = [{"role": SHAREGPT_ROLES.get(str(t.get("from", "")), str(t.get("from"))), "content": str(t.get("value") or "")} for t in turns]
    return Example("", 0, messages=with_system(check_conversation(messages, key), cfg))


def prompt_completion(fields: dict, cfg: DataConfig) -> Example:
    prompt = render_template(fields, cfg.prompt_template) if cfg.prompt_template else text_column(fields, cfg, "prompt")
    completion = target_json(fields, cfg.target_columns) if cfg.target_columns else text_column(fields, cfg, "completion")
    if not prompt.strip():
        raise RowError("prompt", "empty")
    return Example("", 0, messages=with_system([{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], cfg))


def alpaca(fields: dict, cfg: DataConfig) -> Example:
    instruction = text_column(fields, cfg, "instruction")
    extra = text_column(fields, cfg, "input", required=False)
    user = f"{instruction}\n\n{extra}" if extra else instruction
    output = text_column(fields, cfg, "output")
    return Example("", 0, messages=with_system([{"role": "user", "content": user}, {"role": "assistant", "content": output}], cfg))


def text(fields: dict, cfg: DataConfig) -> Example:
    return Example("", 0, text=text_column(fields, cfg, "text"))


def label(fields: dict, cfg: DataConfig) -> Example:
    return Example("", 0, text=text_column(fields, cfg, "text"), label=text_column(fields, cfg, "label"))


def pairs(fields: dict, cfg: DataConfig) -> Example:
    return Example(
        "",
        0,
        prompt=text_column(fields, cfg, "prompt"),
        chosen=text_column(fields, cfg, "chosen"),
        rejected=text_column(fields, cfg, "rejected"),
    )


def render_template(fields: dict, template: str) -> str:
    values = {key: "" if value is None else str(value).strip() for key, value in fields.items()}
    try:
        return template.format(**values).strip()
    except KeyError as err:
        raise RowError(err.args[0], "missing (used by prompt_template)") from None


def target_json(fields: dict, columns: list[str]) -> str:
    target = {}
    for name in columns:
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RowError(name, "missing" if value is None else "empty")
        target[name] = typed_value(value)
    return json.dumps(target, ensure_ascii=False)


def typed_value(value):
    """CSV cells are strings: 'true' -> True, '3' -> 3, anything else stays a stripped string."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value.lstrip("-").isdigit():
        return int(value)
    return value


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


FORMATS: dict[str, Callable[[dict, DataConfig], Example]] = {
    "chat": chat,
    "prompt_completion": prompt_completion,
    "alpaca": alpaca,
    "sharegpt": sharegpt,
    "text": text,
    "label": label,
    "pairs": pairs,
}

# Canonical fields of each format (what cfg.columns may rename); the first group is required.
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "input", "output"),
    "sharegpt": ("conversations",),
    "text": ("text",),
    "label": ("text", "label"),
    "pairs": ("prompt", "chosen", "rejected"),
}
