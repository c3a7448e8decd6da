"""Replay against forgetting, offline: general prompts answered by the base model itself.

A seeded sample of the suite's replay pool (never its held-out eval prompts) is answered once by
the base model; the answers are cached under ``$TUNELOOP_HOME/replay`` keyed by the model and
generation settings, and the pairs join the training split as chat rows (never validation or
test). Training on its own answers anchors the tuned model to the base's general behaviour.

Answers are sampled at ``data.replay_temperature`` (1.0 by default), except a
``data.replay_greedy_share`` of them, which take the base's greedy answer. Cross-entropy on
samples drawn from the base is, in expectation and up to the base's entropy, the KL divergence
from the base's distribution to the tuned model's: replay then distils the base rather than its
single most likely answer. Greedy answers (temperature 0) teach the model to put all its mass on
one continuation, which shows as higher perplexity on general prose; they do keep the base's most
likely answer to factual questions, which samples from a small model often stray from. A share of
each balances the two. With ``data.replay_loss: kl`` the answers only choose the positions: every
token of the row, prompt and answer, trains toward the base's whole next-token distribution there,
the exact KL divergence rather than the one-sample estimate (:mod:`tuneloop.losses.distill`).

>>> rows, record = replay_examples(config.data, get_task("sft"), train_rows=400)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import NamedTuple

from tuneloop.atomic import write_json_atomic
from tuneloop.data.general_prompts import content_hash, replay_prompts, user_turn
from tuneloop.data.schema import Example
from tuneloop.errors import ConfigError
from tuneloop.models.load import load_causal_lm, resolve_model
from tuneloop.paths import tuneloop_home
from tuneloop.progress import status
from tuneloop.text.generate import generate_texts
from tuneloop.text.tokenize import ensure_chat_template, render_prompt

REPLAY_SOURCE = "tuneloop:general-replay"
REPLAY_TASKS = ("sft", "qa")
CACHE_VERSION = 1


def replay_count(fraction: float, train_rows: int) -> int:
    """Replay rows for a training split of ``train_rows`` rows: at least one when replay is on."""
    return max(1, round(fraction * train_rows)) if fraction > 0 else 0


def check_replay(cfg, task_name: str, train_rows: int) -> int:
    """The number of replay rows asked for; ConfigError when replay cannot apply, before any model loads."""
    wanted = replay_count(cfg.replay_fraction, train_rows)
    if wanted and task_name not in REPLAY_TASKS:
        raise ConfigError(f"data.replay_fraction: replay adds chat rows, which task {task_name!r} cannot train on; "
                          f"it applies to {', '.join(REPLAY_TASKS)}")  # fmt: skip
    if wanted and not cfg.replay_model:  # RunConfig fills it from model.name when it validates
        raise ConfigError("data.replay_model: no model named to answer the replay prompts")
    pool = len(replay_prompts())
    if wanted > pool:
        raise ConfigError(
            f"data.replay_fraction {cfg.replay_fraction:g} asks for {wanted} replay rows ({train_rows} training rows), "
            f"but the general replay pool holds {pool} prompts; lower it to at most {pool / max(train_rows, 1):.3f}"
        )
    return wanted


def replay_examples(cfg, task, train_rows: int) -> tuple[list[Example], dict | None]:
    """The replay rows for a training split of ``train_rows`` rows, and the manifest record of them."""
    wanted = check_replay(cfg, task.name, train_rows)
    if not wanted:
        return [], None
    pool = replay_prompts()
    chosen = random.Random(cfg.seed).sample(range(len(pool)), wanted)
    answers = replay_answers(cfg, pool, chosen)
    examples = [
        Example(REPLAY_SOURCE, index + 1, ({"role": "user", "content": pool[index]}, {"role": "assistant", "content": answer}))
        for index, answer in zip(chosen, answers)
        if answer
    ]
    record = {
        "rows": len(examples),
        "empty_answers_skipped": wanted - len(examples),
        "fraction": cfg.replay_fraction,
        "model": cfg.replay_model,
        "max_new_tokens": cfg.replay_max_new_tokens,
        "temperature": cfg.replay_temperature,
        "greedy_rows": greedy_count(cfg, wanted),
        "loss": cfg.replay_loss,
        "pool_prompts": len(pool),
        "pool_sha256": content_hash(pool),
        "rows_sha256": content_hash(m["content"] for e in examples for m in e.messages),
    }
    return examples, record


def greedy_count(cfg, wanted: int) -> int:
    """How many of the ``wanted`` replay rows take the base's greedy answer (all of them at temperature 0)."""
    return wanted if cfg.replay_temperature == 0 else round(cfg.replay_greedy_share * wanted)


def replay_answers(cfg, pool: list[str], chosen: list[int]) -> list[str]:
    """The answers to the ``chosen`` pool prompts: the first ``greedy_count`` greedy, the rest sampled.

    Each kind answers the whole pool (once, then cached): a sampled answer then depends on its prompt
    and the settings only, not on which other prompts an earlier run happened to ask for.
    """
    greedy = greedy_count(cfg, len(chosen))
    kinds = [GenerationSettings(cfg.replay_max_new_tokens)] * greedy
    kinds += [GenerationSettings(cfg.replay_max_new_tokens, cfg.replay_temperature, cfg.seed)] * (len(chosen) - greedy)
    answered = {settings: base_answers(cfg.replay_model, pool, settings) for settings in dict.fromkeys(kinds)}
    return [answered[settings][index] for settings, index in zip(kinds, chosen)]


class GenerationSettings(NamedTuple):
    """How the replay answers are generated: part of their cache key."""

    max_new_tokens: int
    temperature: float = 0.0
    seed: int = 0


def base_answers(model_name: str, prompts: list[str], settings: GenerationSettings) -> list[str]:
    """The model's answers to ``prompts`` (no system prompt), generating only those not cached yet."""
    cache_path = replay_cache_path(model_name, settings)
    cached = json.loads(cache_path.read_text(encoding="utf-8"))["answers"] if cache_path.is_file() else {}
    missing = [p for p in dict.fromkeys(prompts) if p not in cached]
    if missing:
        cached.update(zip(missing, generate_answers(model_name, missing, settings)))
        write_json_atomic(cache_path, {"model": model_name, **settings._asdict(), "answers": cached})
    return [cached[p] for p in prompts]


def generate_answers(model_name: str, prompts: list[str], settings: GenerationSettings) -> list[str]:
    how = f"sampled at temperature {settings.temperature:g}" if settings.temperature > 0 else "greedy"
    with status(f"Replay: {model_name} answers {len(prompts)} general prompts ({how}; cached for later runs)"):
        model, tokenizer = load_causal_lm(model_name)
        ensure_chat_template(tokenizer)
        rendered = [render_prompt(tokenizer, user_turn(p)) for p in prompts]
        answers = generate_texts(model, tokenizer, rendered, settings.max_new_tokens, temperature=settings.temperature, seed=settings.seed)
        return [end_at_sentence(a) for a in answers]


def end_at_sentence(text: str) -> str:
    """Cut an answer that ran out of tokens mid-sentence back to its last full sentence (if any),
    so replay does not teach the model to stop mid-thought."""
    text = text.strip()
    if not text or text[-1] in ".!?\"')":
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", text)]
    return text[: ends[-1]] if ends else text


def replay_cache_path(model_name: str, settings: GenerationSettings) -> Path:
    key = {"model": model_name, "weights": model_identity(model_name), **settings._asdict(), "version": CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return tuneloop_home() / "replay" / f"{digest}.json"


def model_identity(model_name: str) -> list:
    """Names, sizes and times of a local model's weight and config files (a hub id stands for itself)."""
    location = Path(resolve_model(model_name).location)
    if not location.is_dir():
        return [str(location)]
    files = sorted(p for p in location.iterdir() if p.suffix in (".safetensors", ".json", ".gguf"))
    return [str(location)] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
