"""Chat examples -> token ids with assistant-only labels -> packed rows.

Labels are ``-100`` everywhere except on assistant turns (content and end-of-turn token), so
the loss never rewards the model for predicting the user's words (replay rows trained by KL
are scored on every token, against the base model's distribution rather than the words:
:func:`tuneloop.losses.distill.for_distillation`). Packing places several
examples in one row with ``position_ids`` restarting at 0 for each; transformers turns that
into a block-diagonal causal mask, so no token attends across examples and no compute is
spent on padding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tuneloop.data.schema import Example

IGNORE = -100

# ChatML, used when a tokenizer ships without a chat template (base models).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    distill: bool = False  # labels scored against the base model's distribution (replay, data.replay_loss kl)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def label_count(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def ensure_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE


def render_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of ``messages`` rendered with the chat template (and the assistant cue when ``add_generation_prompt``)."""
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt)["input_ids"])


def render_prompt(tokenizer, messages) -> str:
    """The text a model is given at inference: every turn before the last, then the assistant cue."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def assistant_spans(tokenizer, messages) -> tuple[str, list[tuple[int, int]]]:
    """Full rendered conversation and the character spans of its assistant turns."""
    messages = list(messages)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True))
        end = len(tokenizer.apply_chat_template(messages[: index + 1], tokenize=False))
        spans.append((start, end))
    return text, spans


def tokenize_chat(tokenizer, example: Example) -> TokenizedExample:
    text, spans = assistant_spans(tokenizer, example.messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE
        for token, (begin, _) in zip(encoded["input_ids"], encoded["offset_mapping"])
    ]
    return TokenizedExample(list(encoded["input_ids"]), labels)


def pack_examples(examples: list[TokenizedExample], pack_length: int, seed: int) -> list["PackedRow"]:
    """First-fit-decreasing bins of at most ``pack_length`` tokens, in a seeded random order.

    Each returned row keeps its examples' boundaries in ``position_ids`` (see :func:`packed_positions`).
    """
    bins: list[list[TokenizedExample]] = []
    room: list[int] = []
    for example in sorted(examples, key=len, reverse=True):
        slot = next((i for i, free in enumerate(room) if free >= len(example)), None)
        if slot is None:
            bins.append([])
            room.append(pack_length)
            slot = len(bins) - 1
        bins[slot].append(example)
        room[slot] -= len(example)
    random.Random(seed).shuffle(bins)
    return [PackedRow.from_examples(group) for group in bins]


@dataclass(frozen=True)
class PackedRow(TokenizedExample):
    position_ids: list[int] = ()
    distill_mask: list[bool] = ()  # per token, for rows holding a distilled example (``distill`` stays False)

    @classmethod
    def from_examples(cls, group: list[TokenizedExample]) -> "PackedRow":
        return cls(
            input_ids=[t for ex in group for t in ex.input_ids],
            labels=[t for ex in group for t in ex.labels],
            position_ids=[p for ex in group for p in range(len(ex))],
            distill_mask=[ex.distill for ex in group for _ in range(len(ex))] if any(ex.distill for ex in group) else [],
        )


def collate_padded(rows: list[TokenizedExample], pad_token_id: int) -> dict:
    """One example per row, right-padded, with an attention mask (for unpackable methods)."""
    import torch

    width = max(len(row) for row in rows)
    pad = lambda values, fill: list(values) + [fill] * (width - len(values))  # noqa: E731
    return {
        "input_ids": torch.tensor([pad(r.input_ids, pad_token_id) for r in rows]),
        "attention_mask": torch.tensor([pad([1] * len(r), 0) for r in rows]),
        "labels": torch.tensor([pad(r.labels, IGNORE) for r in rows]),
        "real_tokens": torch.tensor(sum(len(r) for r in rows)),
    }


def batch_rows(examples: list[TokenizedExample], pack: bool, pack_length: int, seed: int) -> list[TokenizedExample]:
    """Packed rows for methods that keep positions, else one example per row (longest first)."""
    if pack:
        return pack_examples(examples, pack_length, seed)
    return sorted(examples, key=len, reverse=True)


def collate_rows(rows: list[TokenizedExample], pad_token_id: int) -> dict:
    if isinstance(rows[0], PackedRow):
        return collate_packed(rows, pad_token_id)
    return collate_padded(rows, pad_token_id)


def collate_packed(rows: list[PackedRow], pad_token_id: int) -> dict:
    """Pad packed rows to the longest; padding is its own segment and carries no label.

    ``distill_mask`` (bool) joins the batch when a row holds a distilled example.
    """
    import torch

    width = max(len(row) for row in rows)
    batch = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        pad = width - len(row)
        batch["input_ids"].append(list(row.input_ids) + [pad_token_id] * pad)
        batch["labels"].append(list(row.labels) + [IGNORE] * pad)
        batch["position_ids"].append(list(row.position_ids) + list(range(pad)))
    tensors = {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
    if any(row.distill_mask for row in rows):
        marks = [list(row.distill_mask) or [False] * len(row) for row in rows]
        tensors["distill_mask"] = torch.tensor([m + [False] * (width - len(m)) for m in marks], dtype=torch.bool)
    tensors["real_tokens"] = torch.tensor(sum(len(row) for row in rows))
    return tensors


def token_counter(tokenizer, data_format: str):
    """An example's length in tokens as the tasks reading ``data_format`` would tokenise it."""
    ensure_chat_template(tokenizer)
    if data_format in ("pairs", "ratings"):
        return lambda example: answered_prompt_length(tokenizer, example)
    if data_format in ("text", "label"):
        return lambda example: len(tokenizer(example.input_text + example.target_text)["input_ids"])
    return lambda example: len(tokenize_chat(tokenizer, example))


def answered_prompt_length(tokenizer, example: Example) -> int:
    """Tokens of a pair's or rating's prompt (a conversation rendered with the chat template, up to the
    assistant cue) and of its longest answer."""
    prompt = render_prompt(tokenizer, example.messages) if example.messages else example.prompt
    answers = [text for text in (example.chosen, example.rejected, example.completion) if text]
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return count(prompt) + max(map(count, answers))
