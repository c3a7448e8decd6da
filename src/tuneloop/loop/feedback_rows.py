"""Feedback turned into training material: corrections become SFT rows, preferences stay pairs."""

from __future__ import annotations

from tuneloop.data.schema import Example
from tuneloop.store.requests import logged_messages


def correction_examples(corrections, system_prompt: str | None) -> list[Example]:
    """One chat example per correction: the request's conversation, answered the way the user wrote."""
    examples = []
    for correction in corrections:
        messages = logged_messages(correction.prompt)
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        examples.append(
            Example(f"feedback:{correction.request_id}", correction.id, messages=(*messages, {"role": "assistant", "content": correction.correction}))
        )
    return examples


def preference_rows(preferences) -> list[dict]:
    """``pairs`` rows (prompt, chosen, rejected) for the alignment stage."""
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in preferences]
