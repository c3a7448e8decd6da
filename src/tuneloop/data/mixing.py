"""Multi-task fine-tuning: several datasets in one run, mixed by weight.

``data`` describes the run's main dataset; ``data.mix`` lists the others, each with its own
files, format, columns, template and system prompt. Every dataset is validated and split on its
own (same fractions and seed), so each task keeps its own validation and test rows; the
validation and test splits of the run are their union, and the report scores the test rows
task by task. The training split is a mixture: ``total`` draws shared out between the tasks
with probabilities

    proportional: p_i ∝ w_i · n_i
    temperature:  p_i ∝ w_i · n_i^(1/T)        (T = data.mixing_temperature; T = 1 is proportional)

where ``n_i`` is task i's training rows and ``w_i`` its weight. Temperature sampling (as in T5
and mT5) lifts small tasks without repeating them endlessly. ``total`` is the sum of the tasks'
training rows, so a run sees as many rows per epoch as without mixing; a task that gets more
draws than it has rows repeats them (each full pass in a new seeded order).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tuneloop.data.schema import Example

TASK_KEY = "task"  # Example.meta key naming the dataset a row came from


@dataclass(frozen=True)
class Source:
    """One dataset of the mixture: its name, weight and the DataConfig that reads it."""

    name: str
    weight: float
    config: object  # tuneloop.config.DataConfig


def mixture_sources(cfg) -> list[Source]:
    """The main dataset (``data``), then each ``data.mix`` entry as a DataConfig of its own."""
    shared = {"mix": [], "path": cfg.path}
    sources = [Source(cfg.task_name, cfg.task_weight, cfg.model_copy(update=shared))]
    for entry in cfg.mix:
        own = entry.model_dump(exclude={"name", "weight"})
        # data.val_path / data.test_path are the main dataset's splits, not this one's
        sources.append(Source(entry.name, entry.weight, cfg.model_copy(update={**own, "mix": [], "val_path": None, "test_path": None})))
    return sources


def tag(examples: list[Example], name: str) -> list[Example]:
    """Mark every example with its task (kept in the saved splits, read back by evaluation)."""
    for example in examples:
        example.meta[TASK_KEY] = name
    return examples


def task_of(example: Example) -> str | None:
    return example.meta.get(TASK_KEY) if example.meta else None


def mixing_probabilities(sizes: list[int], weights: list[float], strategy: str, temperature: float) -> list[float]:
    """Share of the training draws each task gets (tasks with no training rows get none)."""
    exponent = 1.0 if strategy == "proportional" else 1.0 / temperature
    mass = [w * (n**exponent) if n else 0.0 for n, w in zip(sizes, weights)]
    total = sum(mass)
    return [m / total for m in mass] if total else [0.0] * len(sizes)


def draw_counts(total: int, probabilities: list[float]) -> list[int]:
    """``total`` draws shared by ``probabilities`` with largest-remainder rounding (they add up exactly)."""
    exact = [total * p for p in probabilities]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def draw_rows(rows: list[Example], count: int, seed: int) -> list[Example]:
    """``count`` rows of ``rows``: whole seeded passes, then the start of one more."""
    rng = random.Random(seed)
    drawn: list[Example] = []
    while rows and len(drawn) < count:
        shuffled = list(rows)
        rng.shuffle(shuffled)
        drawn += shuffled[: count - len(drawn)]
    return drawn


def mix_training_rows(trains: list[list[Example]], sources: list[Source], strategy: str, temperature: float, seed: int):
    """(the mixed training rows in a seeded order, the manifest's per-task record)."""
    sizes = [len(rows) for rows in trains]
    probabilities = mixing_probabilities(sizes, [s.weight for s in sources], strategy, temperature)
    counts = draw_counts(sum(sizes), probabilities)
    mixed = [row for i, rows in enumerate(trains) for row in draw_rows(rows, counts[i], seed + i)]
    random.Random(seed).shuffle(mixed)
    record = {
        "strategy": strategy,
        "temperature": temperature if strategy == "temperature" else None,
        "tasks": {
            source.name: {"weight": source.weight, "train_rows": n, "probability": round(p, 4), "drawn": c}
            for source, n, p, c in zip(sources, sizes, probabilities, counts)
        },
    }
    return mixed, record
