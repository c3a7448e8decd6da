"""One normaliser per row format: raw fields -> :class:`~tuneloop.data.schema.Example`.

A normaliser raises :class:`RowError` naming the field when a row cannot be used; the caller
records it with file and line and moves on. ``cfg.columns`` maps a format's canonical field
to the file's column name, so errors name the column the user knows.
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
from typing import Callable

from tuneloop.config import DataConfig
from tuneloop.data.schema import ROLES, Example
from tuneloop.errors import ConfigError

Normaliser = Callable[[dict, DataConfig], Example]

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # ASCII only, no leading zeros: "007" stays an id string


class RowError(Exception):
    """A row that cannot be used; ``field`` is the file's column name (None: the whole row)."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


# --- reading fields ----------------------------------------------------------------------


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def column_name(cfg: DataConfig, name: str) -> str:
    """The file column that holds canonical field ``name``."""
    return cfg.columns.get(name, name)


# Other columns a format's field may come from when the file has no column of the field's name and
# data.columns maps none: LLaMA-Factory's preference files name the shared conversation ``conversations``.
ALTERNATIVE_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "pairs": {"prompt": ("conversations",)},
    "ratings": {"prompt": ("conversations",)},
}


def column_choices(cfg: DataConfig, name: str) -> tuple[str, ...]:
    """The columns that may hold canonical field ``name``, in order of preference."""
    if name in cfg.columns:
        return (cfg.columns[name],)
    return (name, *ALTERNATIVE_COLUMNS.get(cfg.format, {}).get(name, ()))


def column(fields: dict, cfg: DataConfig, name: str, required: bool = True):
    """The raw value of a canonical field; None when optional and absent or blank."""
    key = column_name(cfg, name)
    value = fields.get(key)
    if is_blank(value):
        if required:
            raise RowError(key, "missing" if value is None else "empty")
        return None
    return value


def as_text(value, key: str) -> str:
    if isinstance(value, (dict, list)):
        raise RowError(key, f"expected text, got {'an object' if isinstance(value, dict) else 'a list'}")
    return scalar_text(value, key)


def scalar_text(value, key: str) -> str:
    """A cell's text; binary data and NaN/Infinity are refused, not written out as "b'...'", "nan" or "inf"."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise RowError(key, "expected text, got binary data (bytes)")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(key, f"expected text, got the number {value} (NaN or Infinity)")
    return str(value).strip()


def text_column(fields: dict, cfg: DataConfig, name: str, required: bool = True) -> str | None:
    value = column(fields, cfg, name, required)
    return None if value is None else as_text(value, column_name(cfg, name))


# --- conversations -----------------------------------------------------------------------


def parse_turns(value, field: str) -> list[dict]:
    """A list of turn objects; CSV cells hold it as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RowError(field, f"not a JSON list of turns: {err.msg}") from None
        except RecursionError:
            raise RowError(field, "JSON nested too deeply to read") from None
    if not isinstance(value, list) or not all(isinstance(turn, dict) for turn in value):
        raise RowError(field, "expected a list of turn objects")
    return value


def turn_content(value, field: str) -> str:
    """Turn text; OpenAI-style content parts ``[{"type": "text", "text": ...}]`` are joined."""
    if value is None:
        return ""
    if isinstance(value, list):
        parts = [part if isinstance(part, str) else part.get("text") for part in value if isinstance(part, (str, dict))]
        return "".join(part for part in parts if isinstance(part, str)).strip()
    if isinstance(value, dict):
        raise RowError(field, "turn content is an object, expected text")
    return scalar_text(value, field)


def check_turns(messages: list[dict], field: str) -> list[dict]:
    """Every turn has a known role and some text."""
    if not messages:
        raise RowError(field, "empty conversation")
    for turn in messages:
        if turn["role"] not in ROLES:
            raise RowError(field, f"unknown role {turn['role']!r} (expected one of {', '.join(ROLES)})")
        if not turn["content"]:
            raise RowError(field, f"empty {turn['role']} turn")
    return messages


def check_conversation(messages: list[dict], field: str) -> list[dict]:
    check_turns(messages, field)
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError(field, "no assistant turn")
    if messages[-1]["role"] != "assistant":
        raise RowError(field, "conversation does not end with an assistant turn")
    return messages


def with_system(messages: list[dict], cfg: DataConfig) -> tuple[dict, ...]:
    """Prepend ``cfg.system_prompt`` unless the row brings its own system turn."""
    if cfg.system_prompt and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": cfg.system_prompt}, *messages]
    return tuple(messages)


def user_and_assistant(user: str, assistant: str, cfg: DataConfig) -> tuple[dict, ...]:
    return with_system([{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], cfg)


# --- templates and structured targets ----------------------------------------------------


@functools.lru_cache(maxsize=32)
def template_fields(template: str) -> tuple[str, ...]:
    """Column names a prompt template uses, in order; a malformed template is a ConfigError."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigError(f"data.prompt_template: {err}; write columns as {{name}} and literal braces as {{{{ and }}}}") from None
    names: dict[str, None] = {}
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or any(c in name for c in ".[]"):
            raise ConfigError(f"data.prompt_template: {{{name}}} is not a column name; write columns as {{subject}}")
        names[name] = None
    return tuple(names)


def templated_prompt(fields: dict, template: str) -> str:
    names = template_fields(template)
    for name in names:
        if name not in fields:
            raise RowError(name, "missing (used by prompt_template)")
    if names and all(is_blank(fields[name]) for name in names):
        raise RowError(names[0] if len(names) == 1 else "prompt", "empty")
    values = {key: "" if value is None else str(value).strip() for key, value in fields.items()}
    values.update((name, scalar_text(fields[name], name)) for name in names if not is_blank(fields[name]))
    try:
        return template.format(**values).strip()
    except (ValueError, KeyError, IndexError) as err:  # e.g. a format spec like {count:d} on text
        raise RowError("prompt", f"prompt_template failed: {err}") from None


def target_json(fields: dict, columns: list[str]) -> str:
    """The completion of a structured-extraction row: a JSON object of typed column values."""
    target = {}
    for name in columns:
        value = fields.get(name)
        if is_blank(value):
            raise RowError(name, "missing" if value is None else "empty")
        target[name] = typed_value(value, name)
    return json.dumps(target, ensure_ascii=False)


def typed_value(value, key: str):
    """CSV cells are strings: 'true' -> True, '3' -> 3, anything else stays a stripped string."""
    if isinstance(value, (bytes, bytearray, memoryview, float)):
        scalar_text(value, key)  # binary data and NaN/Infinity have no JSON value: refused
    if not isinstance(value, str):
        return value
    value = value.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if INTEGER.fullmatch(value):
        return int(value)
    return value


# --- the normalisers ---------------------------------------------------------------------


def chat(fields: dict, cfg: DataConfig) -> Example:
    key = column_name(cfg, "messages")
    turns = parse_turns(column(fields, cfg, "messages"), key)
    messages = [{"role": str(t.get("role") or "").strip().lower(), "content": turn_content(t.get("content"), key)} for t in turns]
    return Example("", 0, messages=with_system(check_conversation(messages, key), cfg))


def sharegpt(fields: dict, cfg: DataConfig) -> Example:
    key = column_name(cfg, "conversations")
    turns = parse_turns(column(fields, cfg, "conversations"), key)
    messages = [{"role": sharegpt_role(t.get("from")), "content": turn_content(t.get("value"), key)} for t in turns]
    return Example("", 0, messages=with_system(check_conversation(messages, key), cfg))


def sharegpt_role(speaker) -> str:
    speaker = str(speaker or "").strip().lower()
    return SHAREGPT_ROLES.get(speaker, speaker)


def prompt_completion(fields: dict, cfg: DataConfig) -> Example:
    if cfg.prompt_template:
        prompt = templated_prompt(fields, cfg.prompt_template)
    else:
        prompt = text_column(fields, cfg, "prompt")
    if cfg.target_columns:
        completion = target_json(fields, cfg.target_columns)
    else:
        completion = text_column(fields, cfg, "completion")
    return Example("", 0, messages=user_and_assistant(prompt, completion, cfg))


def alpaca(fields: dict, cfg: DataConfig) -> Example:
    instruction = text_column(fields, cfg, "instruction")
    extra = text_column(fields, cfg, "input", required=False)
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return Example("", 0, messages=user_and_assistant(user, text_column(fields, cfg, "output"), cfg))


def text(fields: dict, cfg: DataConfig) -> Example:
    return Example("", 0, text=text_column(fields, cfg, "text"))


def label(fields: dict, cfg: DataConfig) -> Example:
    return Example("", 0, text=text_column(fields, cfg, "text"), label=text_column(fields, cfg, "label"))


def pairs(fields: dict, cfg: DataConfig) -> Example:
    """A prompt and two answers to it, the better one first; see :func:`shared_prompt` for the shapes."""
    prompt_key, prompt = prompt_column(fields, cfg)
    chosen_key, rejected_key = column_name(cfg, "chosen"), column_name(cfg, "rejected")
    chosen, chosen_turns = answer(column(fields, cfg, "chosen"), chosen_key)
    rejected, rejected_turns = answer(column(fields, cfg, "rejected"), rejected_key)
    if " ".join(chosen.split()) == " ".join(rejected.split()):
        raise RowError(rejected_key, f"identical to {chosen_key} (a pair needs two different answers)")
    text, messages = shared_prompt(prompt, prompt_key, {chosen_key: chosen_turns, rejected_key: rejected_turns}, cfg)
    return Example("", 0, messages=messages, prompt=text, chosen=chosen, rejected=rejected)


def ratings(fields: dict, cfg: DataConfig) -> Example:
    """A prompt, one answer to it and a person's rating of that answer (good or bad, or a score)."""
    prompt_key, prompt = prompt_column(fields, cfg)
    completion_key = column_name(cfg, "completion")
    completion, completion_turns = answer(column(fields, cfg, "completion"), completion_key)
    good, score = rating(column(fields, cfg, "label"), column_name(cfg, "label"), cfg.rating_threshold)
    text, messages = shared_prompt(prompt, prompt_key, {completion_key: completion_turns}, cfg)
    return Example("", 0, messages=messages, prompt=text, completion=completion, good=good, score=score)


# --- pairs and ratings: the shared prompt, the answers, the rating ------------------------

GOOD_WORDS = frozenset({"good", "true", "yes", "up", "thumbs up", "thumbsup", "positive", "desirable", "\N{THUMBS UP SIGN}"})
BAD_WORDS = frozenset({"bad", "false", "no", "down", "thumbs down", "thumbsdown", "negative", "undesirable", "\N{THUMBS DOWN SIGN}"})


def prompt_column(fields: dict, cfg: DataConfig) -> tuple[str, str | list[dict]]:
    """(the column that holds the prompt, the prompt): plain text, or the turns of a conversation
    (a list, or a CSV cell holding one as JSON)."""
    choices = column_choices(cfg, "prompt")
    key = next((name for name in choices if name in fields), choices[0])
    value = turns_in_cell(fields.get(key))
    if isinstance(value, list):
        return key, [chat_turn(turn, key) for turn in parse_turns(value, key)]
    if is_blank(value):
        raise RowError(key, "missing" if value is None else "empty")
    return key, as_text(value, key)


def answer(value, key: str) -> tuple[str, tuple[dict, ...] | None]:
    """(the answer's text, the turns given before it, or None when the answer is plain text).

    An answer is text, an assistant message (``{"role": "assistant", "content": ...}`` or
    ``{"from": "gpt", "value": ...}``), or a list of messages ending with one (TRL's conversational
    shape: usually that one message; a whole conversation repeats the prompt's turns before it).
    """
    value = turns_in_cell(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        text = as_text(value, key)
        if not text:
            raise RowError(key, "empty")
        return text, None
    messages = [chat_turn(turn, key) for turn in parse_turns(value, key)]
    if not messages:
        raise RowError(key, "empty (a list of no messages)")
    last = messages[-1]
    if last["role"] != "assistant":
        raise RowError(key, f"ends with a {last['role'] or 'role-less'} turn, expected the assistant's answer")
    if not last["content"]:
        raise RowError(key, "empty")
    return last["content"], tuple(messages[:-1])


def shared_prompt(prompt: str | list[dict], key: str, answers: dict[str, tuple | None], cfg: DataConfig) -> tuple[str, tuple[dict, ...]]:
    """(plain-text prompt, conversation): one of them is set.

    The prompt is a conversation when it is given as turns or when an answer is given as a message;
    a plain-text prompt is then its user turn. Turns an answer repeats before itself must be the prompt's.
    """
    if isinstance(prompt, str) and all(turns is None for turns in answers.values()):
        return prompt, ()
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    check_turns(messages, key)
    if messages[-1]["role"] != "user":
        raise RowError(key, "conversation does not end with a user turn (the answers reply to it)")
    for name, turns in answers.items():
        if turns and list(turns) != messages:
            raise RowError(name, f"the turns before its answer differ from {key}")
    return "", with_system(messages, cfg)


def turns_in_cell(value):
    """A CSV cell holding the JSON of a message or a list of messages becomes it; any other text stays
    text (an answer that is a JSON object, such as an extraction's, is an answer, not a message)."""
    if isinstance(value, str) and value.lstrip()[:2] in ("[{", "{\""):
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # not a message after all: the text is the answer
            return value
        if is_message(parsed) or (isinstance(parsed, list) and parsed and all(map(is_message, parsed))):
            return parsed
    return value


def is_message(value) -> bool:
    return isinstance(value, dict) and ("role" in value or "from" in value)


def chat_turn(turn: dict, key: str) -> dict:
    """``{"role", "content"}`` from an OpenAI-style or a ShareGPT-style (``from``/``value``) turn."""
    if "role" not in turn and "from" in turn:
        return {"role": sharegpt_role(turn.get("from")), "content": turn_content(turn.get("value"), key)}
    return {"role": str(turn.get("role") or "").strip().lower(), "content": turn_content(turn.get("content"), key)}


def rating(value, key: str, threshold: float) -> tuple[bool, float | None]:
    """(good, score): a word or boolean is the rating itself; a number is a score, good at or above ``threshold``."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str):
        word = " ".join(value.strip().casefold().replace("_", " ").replace("-", " ").split())
        if word in GOOD_WORDS or word in BAD_WORDS:
            return word in GOOD_WORDS, None
        try:
            value = float(value.strip())
        except ValueError:
            raise RowError(key, f"not a rating: {value.strip()!r} (expected good/bad, true/false, yes/no, thumbs up/down, or a number)") from None
    if not isinstance(value, (int, float)):
        raise RowError(key, f"not a rating: got {'an object' if isinstance(value, dict) else 'a list'}, expected a word or a number")
    if not math.isfinite(value):
        raise RowError(key, f"not a rating: {value} is not a finite number")
    return value >= threshold, float(value)


FORMATS: dict[str, Normaliser] = {
    "chat": chat,
    "prompt_completion": prompt_completion,
    "alpaca": alpaca,
    "sharegpt": sharegpt,
    "text": text,
    "label": label,
    "pairs": pairs,
    "ratings": ratings,
}

# Canonical fields of each format (the names cfg.columns may map): required, then optional.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction", "output"),
    "sharegpt": ("conversations",),
    "text": ("text",),
    "label": ("text", "label"),
    "pairs": ("prompt", "chosen", "rejected"),
    "ratings": ("prompt", "completion", "label"),
}
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"alpaca": ("input",)}


def format_fields(name: str) -> tuple[str, ...]:
    return REQUIRED_FIELDS[name] + OPTIONAL_FIELDS.get(name, ())


def required_fields(cfg: DataConfig) -> list[str]:
    """Canonical fields every row must have; a template or target columns replace prompt/completion."""
    replaced = set()
    if cfg.format == "prompt_completion":
        replaced |= {"prompt"} if cfg.prompt_template else set()
        replaced |= {"completion"} if cfg.target_columns else set()
    return [name for name in REQUIRED_FIELDS[cfg.format] if name not in replaced]
