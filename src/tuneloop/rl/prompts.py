"""The prompts a policy answers during reinforcement learning, from any chat-like data format."""

from __future__ import annotations

# Formats whose rows hold a prompt: preference pairs and ratings (their answers are not used), and the
# chat formats (their last assistant turn is dropped, so SFT data can be reused for RL).
PROMPT_FORMATS = ("pairs", "ratings", "chat", "sharegpt", "prompt_completion", "alpaca")


def prompt_turns(example) -> list[dict]:
    """The turns the policy answers: a pair's or rating's prompt, or a conversation without its final answer."""
    turns = example.prompt_turns
    while turns and turns[-1]["role"] == "assistant":
        turns = turns[:-1]
    return turns
