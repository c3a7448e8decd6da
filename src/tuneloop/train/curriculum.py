"""Curriculum learning: easy examples first, harder ones let in as training goes on.

Each training example gets a difficulty before training starts (``train.curriculum``):

* ``length``: its token count (long prompts and long answers are harder to fit);
* ``loss``: the model's own mean loss on the example's labelled tokens before any update (for
  LoRA-style methods that is the base model, since their adapters start as the identity); a replay
  row trained by KL (``data.replay_loss: kl``) is scored by that KL, as it trains.

A pacing function (Platanios et al., 2019, competence-based curriculum learning) gives the
share ``c`` of the easiest examples that may be drawn once a fraction ``p`` of the run is done,
``c0 = train.curriculum_start``::

    linear: c(p) = min(1, c0 + (1 - c0) p)
    root:   c(p) = min(1, sqrt(c0^2 + (1 - c0^2) p))

The run's whole stream of examples is drawn up front from what is available at each point,
least-seen first (ties broken by a seeded draw), so nothing repeats before everything available
was seen. The stream is packed in consecutive windows of one optimiser step's tokens and the
trainer reads the rows in that order, not shuffled.
"""

from __future__ import annotations

import math
import random

from tuneloop.errors import ConfigError
from tuneloop.losses.distill import with_distilled_kl
from tuneloop.losses.label_loss import label_positions
from tuneloop.progress import status
from tuneloop.text.tokenize import PackedRow, collate_packed, pack_examples

DIFFICULTIES = ("length", "loss")


def competence(progress: float, start: float, pacing: str) -> float:
    """Share of the easiest examples available at ``progress`` (0 = first draw, 1 = end of run)."""
    progress = min(max(progress, 0.0), 1.0)
    if pacing == "linear":
        return min(1.0, start + (1.0 - start) * progress)
    if pacing == "root":
        return min(1.0, math.sqrt(start**2 + (1.0 - start**2) * progress))
    raise ConfigError(f"train.curriculum_pacing: unknown pacing {pacing!r}; choose linear or root")


def curriculum_stream(difficulty: list[float], draws: int, start: float, pacing: str, seed: int) -> list[int]:
    """Indices of ``draws`` examples in training order, easy first as the pacing allows."""
    order = sorted(range(len(difficulty)), key=lambda i: (difficulty[i], i))  # easiest first
    rng = random.Random(seed)
    seen = [0] * len(order)  # by rank in ``order``
    stream = []
    for draw in range(draws):
        available = max(1, math.ceil(competence(draw / max(draws, 1), start, pacing) * len(order)))
        fewest = min(seen[:available])
        rank = rng.choice([r for r in range(available) if seen[r] == fewest])
        seen[rank] += 1
        stream.append(order[rank])
    return stream


def difficulty_by_length(tokenized: list) -> list[float]:
    return [float(len(example)) for example in tokenized]


def difficulty_by_loss(model, tokenized: list, pack_length: int) -> list[float]:
    """Mean token loss of every example under ``model`` as it is now, in one packed pass without gradients."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    losses: list[float] = []
    with torch.no_grad():
        for group in pack_groups(tokenized, pack_length):  # consecutive, so losses come back in order
            batch = collate_packed([PackedRow.from_examples(group)], pad_token_id=0)
            batch.pop("real_tokens")
            batch = {key: value.to(model.device) for key, value in batch.items()}
            keep, targets = label_positions(batch["labels"])
            logits = model(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False
            ).logits
            token_losses = F.cross_entropy(logits.float(), targets, reduction="none")
            token_losses = with_distilled_kl(model, batch, keep, logits, token_losses).cpu()
            keep = keep.cpu()
            owner = torch.repeat_interleave(torch.arange(len(group)), torch.tensor([len(e) for e in group]))[keep[0]]
            sums = torch.zeros(len(group)).index_add_(0, owner, token_losses)
            counts = torch.bincount(owner, minlength=len(group)).clamp(min=1)
            losses += (sums / counts).tolist()
    model.train(was_training)
    return losses


def pack_groups(tokenized: list, pack_length: int) -> list[list]:
    """Consecutive examples that fit one row of ``pack_length`` tokens together."""
    groups, room = [], 0
    for example in tokenized:
        if not groups or len(example) > room:
            groups.append([])
            room = pack_length
        groups[-1].append(example)
        room -= len(example)
    return groups


def ordered_rows(tokenized: list, stream: list[int], packs: bool, pack_length: int, window_tokens: int, seed: int) -> list:
    """The stream as training rows: packed window by window (order kept across windows), or one example per row."""
    examples = [tokenized[i] for i in stream]
    if not packs:
        return examples
    rows, window, tokens = [], [], 0
    for example in examples:
        if window and tokens + len(example) > window_tokens:
            rows += pack_examples(window, pack_length, seed + len(rows))
            window, tokens = [], 0
        window.append(example)
        tokens += len(example)
    return rows + (pack_examples(window, pack_length, seed + len(rows)) if window else [])


def check_curriculum(config, packs: bool) -> None:
    """ConfigError, before any work, for a curriculum the run cannot follow."""
    if config.train.curriculum == "loss" and not packs:
        raise ConfigError(
            "train.curriculum: 'loss' scores examples with packed rows; this method/task trains unpacked "
            "(prompt-learning methods, classification): use train.curriculum: length"
        )


def curriculum_rows(model, tokenized: list, config, packs: bool, rows_per_step: int, rows_per_pass: int) -> tuple[list, dict]:
    """Training rows in curriculum order for the whole run, and what ``train.json`` records about it.

    The stream holds as many examples as the run consumes: ``train.epochs`` passes, or enough
    for ``train.max_steps`` steps (at the rows-per-example ratio of one shuffled pass).
    """
    t = config.train
    if t.curriculum == "loss":
        with status(f"Curriculum: the model's loss on {len(tokenized)} training examples"):
            difficulty = difficulty_by_loss(model, tokenized, t.pack_length)
    else:
        difficulty = difficulty_by_length(tokenized)
    if t.max_steps > 0:
        draws = math.ceil(t.max_steps * rows_per_step * len(tokenized) / max(rows_per_pass, 1))
    else:
        draws = math.ceil(t.epochs * len(tokenized))
    stream = curriculum_stream(difficulty, draws, t.curriculum_start, t.curriculum_pacing, t.seed)
    rows = ordered_rows(tokenized, stream, packs, t.pack_length, rows_per_step * t.pack_length, t.seed)
    record = {
        "difficulty": t.curriculum,
        "pacing": t.curriculum_pacing,
        "start": t.curriculum_start,
        "examples": len(tokenized),
        "draws": draws,
        "rows": len(rows),
        "difficulty_quartiles": quartiles(difficulty),
    }
    return rows, record


def quartiles(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4) for q in (0.0, 0.25, 0.5, 0.75, 1.0)] if ordered else []
