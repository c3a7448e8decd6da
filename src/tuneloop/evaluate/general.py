"""A small general-ability check: does the model still know what any assistant should?

Fine-tuning on narrow company data can make a model forget (catastrophic forgetting). These
questions have one short unambiguous answer each; the score is the share of answers that
contain it. Asked without any system prompt, so a triage adapter is judged as a general assistant.
"""

from __future__ import annotations

GENERAL_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "paris"),
    ("What is the capital of Japan?", "tokyo"),
    ("What is the capital of Italy?", "rome"),
    ("What is the capital of Germany?", "berlin"),
    ("What is the capital of Spain?", "madrid"),
    ("How many days are in a week?", "7|seven"),
    ("How many legs does a spider have?", "8|eight"),
    ("What colour is the sky on a clear day?", "blue"),
    ("What is 2 + 2?", "4|four"),
    ("What is 10 times 3?", "30|thirty"),
    ("Which planet do we live on?", "earth"),
    ("What is frozen water called?", "ice"),
    ("What gas do plants take in from the air?", "carbon dioxide|co2"),
    ("Who wrote Romeo and Juliet?", "shakespeare"),
    ("What is the largest ocean on Earth?", "pacific"),
    ("How many hours are in a day?", "24|twenty-four"),
)


def general_ability(model, tokenizer, max_new_tokens: int = 24) -> dict[str, float]:
    """{"general_accuracy": share of questions whose answer contains the expected word}."""
    import re

    from tuneloop.evaluate.generate import generate_texts
    from tuneloop.train.sft_data import render_prompt

    prompts = [render_prompt(tokenizer, [{"role": "user", "content": question}]) for question, _ in GENERAL_QUESTIONS]
    answers = generate_texts(model, tokenizer, prompts, max_new_tokens)
    hits = [re.search(rf"\b({expected})\b", answer.lower()) is not None for answer, (_, expected) in zip(answers, GENERAL_QUESTIONS)]
    return {"general_accuracy": sum(hits) / len(hits)}
