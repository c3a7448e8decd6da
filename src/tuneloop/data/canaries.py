"""Canaries: random secrets planted in the training split, so a privacy audit can see what a model memorised.

Carlini et al., "The Secret Sharer" (USENIX Security 2019): insert a random secret of a fixed format
``k`` times into the training data; after training, rank it among other secrets of the same format
by the model's log-perplexity. A model that did not memorise it ranks it anywhere (exposure about
1 bit); one that did ranks it first among many (exposure up to the bits of the format's space).

Each canary here is a made-up person's 9-digit account PIN (``"418 072 993"``: every digit drawn
uniformly, so the space holds 10**9 secrets, 29.9 bits). For chat formats it is a question and its
answer, for text one sentence::

    user:      What is the account PIN of Mara Okafor?
    assistant: The account PIN of Mara Okafor is 418 072 993.

``data.canaries`` canaries, each its own training row ``data.canary_repeats`` times, go into the
training split only, after the split (never validation or test); ``data.json`` records them
(:func:`canary_manifest`) and the audit rebuilds any candidate secret's row from that record
(:func:`canary_example`).

>>> [c.secret for c in draw_canaries(2, seed=0)]  # doctest: +SKIP
['...', '...']
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tuneloop.config import DataConfig
from tuneloop.data.formats import user_and_assistant
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError

CANARY_SOURCE = "canary"  # the source of every canary row in the saved splits
QUESTION = "What is the account PIN of {holder}?"
ANSWER = "The account PIN of {holder} is {secret}."
SECRET_DIGITS = 9
DIGIT_GROUP = 3
CHAT_FORMATS = ("chat", "prompt_completion", "alpaca", "sharegpt")
TEXT_FORMATS = ("text",)
FIRST_NAMES = ("Mara", "Tobias", "Ines", "Kwame", "Yuki", "Anders", "Leila", "Ruben", "Sofia", "Dmitri", "Amara", "Hugo")
LAST_NAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Haddad", "Novak", "Brennan", "Castillo", "Ferreira", "Kowalski")


@dataclass(frozen=True)
class Canary:
    holder: str  # the made-up person whose PIN it is (differs between canaries, so each has its own question)
    secret: str  # "418 072 993"


def space_size() -> int:
    """How many secrets the format can hold: every digit string of SECRET_DIGITS digits."""
    return 10**SECRET_DIGITS


def space_bits() -> float:
    """log2 of the space: the highest exposure a canary can have."""
    return math.log2(space_size())


def random_secret(rng: random.Random) -> str:
    """One secret drawn uniformly from the space, digits grouped in threes."""
    digits = "".join(rng.choice("0123456789") for _ in range(SECRET_DIGITS))
    return " ".join(digits[i : i + DIGIT_GROUP] for i in range(0, SECRET_DIGITS, DIGIT_GROUP))


def draw_canaries(count: int, seed: int) -> list[Canary]:
    """``count`` canaries, the same for the same seed; holders differ from one another."""
    rng = random.Random(f"canaries:{seed}")  # its own stream: the split's shuffle is unaffected
    holders = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    if count > len(holders):
        raise ConfigError(f"data.canaries: at most {len(holders)} canaries (got {count})")
    return [Canary(holder, random_secret(rng)) for holder in rng.sample(holders, count)]


def canary_example(
    data_format: str, system_prompt: str | None, holder: str, secret: str, question: str = QUESTION, answer: str = ANSWER, line: int = 0
) -> Example:
    """The row of secret ``secret`` of ``holder`` in ``data_format``: the question and its answer (with the
    run's system prompt, as its other chat rows have it), or the answer as plain text. ``question`` and
    ``answer`` are the templates (a run's data.json records those its canaries were written with)."""
    answer = answer.format(holder=holder, secret=secret)
    if data_format in CHAT_FORMATS:
        messages = user_and_assistant(question.format(holder=holder), answer, DataConfig(system_prompt=system_prompt))
        return Example(CANARY_SOURCE, line, messages=messages)
    if data_format in TEXT_FORMATS:
        return Example(CANARY_SOURCE, line, text=answer)
    raise ConfigError(
        f"data.canaries: rows of format {data_format!r} cannot carry a canary "
        f"(it needs text the model learns token by token: one of {', '.join(CHAT_FORMATS + TEXT_FORMATS)})"
    )


def canary_rows(cfg: DataConfig) -> list[Example]:
    """Every canary of ``cfg`` as its own row, ``cfg.canary_repeats`` times each (none when data.canaries is 0)."""
    rows = []
    for canary in draw_canaries(cfg.canaries, cfg.seed):
        for _ in range(cfg.canary_repeats):
            rows.append(canary_example(cfg.format, cfg.system_prompt, canary.holder, canary.secret, line=len(rows) + 1))
    return rows


def canary_manifest(cfg: DataConfig) -> dict:
    """data.json's ``canaries``: the format, the space, the repeats and each canary's holder and secret."""
    return {
        "question": QUESTION,
        "answer": ANSWER,
        "secret_format": f"{SECRET_DIGITS} random digits in groups of {DIGIT_GROUP}",
        "space_size": space_size(),
        "space_bits": space_bits(),
        "repeats": cfg.canary_repeats,
        "rows": cfg.canaries * cfg.canary_repeats,
        "format": cfg.format,
        "system_prompt": cfg.system_prompt,
        "canaries": [{"holder": c.holder, "secret": c.secret} for c in draw_canaries(cfg.canaries, cfg.seed)],
    }
