"""The alignment scenario shared by the align integration and end-to-end tests, on the tiny Llama.

Production (``triage:v1``) learnt to name fruit colours (its frozen test) and never saw a support
ticket: it answers them with whatever comes out. Another version (``style:v1``, its own project so
triage's numbering stays v1 -> v2) also learnt to answer tickets politely. Users compare the two
answers to the same ticket and pick the polite one. ``tuneloop align triage`` should teach production
the polite way without forgetting the colours, and a judge reward model trained on independent pairs
(polite replies over rude or off-topic ones) should prefer the new answers.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import toy_chat_rows, write_jsonl

SYSTEM_PROMPT = "Be brief."
ISSUES = ["the dashboard is down", "my invoice is wrong", "login fails", "exports time out", "alerts never arrive"]
POLITE = "Thanks for writing in, we are on it."
JUDGE_POLITE = ["Thanks for writing in, we are on it.", "Thanks for your patience, a fix is coming.", "Thank you, we will help."]
JUDGE_RUDE = ["Not our problem.", "Read the docs yourself.", "Stop writing to us.", "red", "purple", "yellow"]
# The round's own settings, small enough for two CPU cores (a few seconds of training each). The tolerance is
# one general-check question in 48 and a bit: the random tiny model gets one or none right by chance.
ALIGN_ARGS = ("--min-preferences", "12", "--warmup-steps", "300", "--replay", "2", "--steps", "4", "--lr", "5e-4", "--reward-steps", "40", "--max-new-tokens", "16", "--tolerance", "0.05")


def ticket(i: int) -> str:
    return f"Ticket {i}: {ISSUES[i % len(ISSUES)]}"


def conversation(i: int) -> list[dict]:
    return [{"role": "user", "content": ticket(i)}]


def sft_config(model_dir: Path, data: Path, test: Path, out: Path, project: str, steps: int = 300):
    from tuneloop.config import load_config

    return load_config(None, {
        "project": project, "model.name": str(model_dir), "data.path": [str(data)], "data.format": "chat", "data.test_path": str(test),
        "data.val_fraction": 0.0, "data.test_fraction": 0.0, "data.system_prompt": SYSTEM_PROMPT, "method.r": 16,
        "train.learning_rate": 1e-2, "train.max_steps": steps, "train.tokens_per_batch": 1024, "train.pack_length": 256,
        "train.early_stopping_patience": 0, "train.threads": 1, "out": str(out),
    })  # fmt: skip


def train_versions(model_dir: Path, folder: Path) -> tuple[Path, Path]:
    """(production's run: fruit colours, its test split the frozen test; the polite version's run)."""
    from tuneloop.train.run import train

    fruits = toy_chat_rows(50)
    test = write_jsonl(folder / "fruit_test.jsonl", fruits[40:])
    polite = [{"messages": [*conversation(i), {"role": "assistant", "content": POLITE}]} for i in range(2000, 2040)]
    v1 = train(sft_config(model_dir, write_jsonl(folder / "v1.jsonl", fruits[:40]), test, folder / "v1", "triage"))
    style = train(sft_config(model_dir, write_jsonl(folder / "style.jsonl", fruits[:40] + polite), test, folder / "style", "style"))
    return v1, style


def train_judge(model_dir: Path, folder: Path) -> Path:
    """The held-out judge: a reward model on polite-vs-rude pairs to tickets no user sent."""
    from tuneloop.config import load_config
    from tuneloop.train.run import train

    rows = [{"prompt": conversation(i), "chosen": JUDGE_POLITE[i % 3], "rejected": JUDGE_RUDE[(i // 3) % len(JUDGE_RUDE)]} for i in range(7000, 7060)]
    data = write_jsonl(folder / "judge.jsonl", rows)
    return train(load_config(None, {
        "project": "judge", "task": "reward", "model.name": str(model_dir), "data.path": [str(data)], "data.format": "pairs",
        "data.val_fraction": 0.0, "data.test_fraction": 0.0, "data.system_prompt": SYSTEM_PROMPT, "method.r": 16,
        "train.learning_rate": 5e-3, "train.max_steps": 40, "train.tokens_per_batch": 512, "train.early_stopping_patience": 0,
        "train.threads": 1, "out": str(folder / "judge"),
    }))  # fmt: skip


def judged(judge_run: Path, runs: dict[str, Path], tickets: range) -> dict[str, float]:
    """{name: mean judge reward of the run's greedy answers to ``tickets``} (as served: system prompt first)."""
    from tuneloop.rl.reward_model import RewardScorer
    from tuneloop.runs.models import load_tuned_model
    from tuneloop.text.generate import generate_texts
    from tuneloop.text.tokenize import render_prompt

    prompts = [[{"role": "system", "content": SYSTEM_PROMPT}, *conversation(i)] for i in tickets]
    scorer, means = RewardScorer.from_run(judge_run, setting="judge"), {}
    for name, run in runs.items():
        model, tokenizer = load_tuned_model(run)
        answers = generate_texts(model, tokenizer, [render_prompt(tokenizer, p) for p in prompts], 16)
        means[name] = float(scorer.scores(prompts, answers).mean())
    return means


def log_answers(conn, run: Path, version_id: str, project: str, tickets: range) -> dict[int, str]:
    """Answer ``tickets`` with ``run`` as the server would and log them; {ticket: request id} (no server needed)."""
    from tuneloop.runs.models import load_tuned_model
    from tuneloop.store.requests import log_request
    from tuneloop.text.generate import generate_texts
    from tuneloop.text.tokenize import render_prompt

    model, tokenizer = load_tuned_model(run)
    prompts = [render_prompt(tokenizer, [{"role": "system", "content": SYSTEM_PROMPT}, *conversation(i)]) for i in tickets]
    answers = generate_texts(model, tokenizer, prompts, 16)
    return {
        i: log_request(conn, model=version_id, prompt=json.dumps(conversation(i)), response=answer, latency_ms=1.0, version_id=version_id, project=project)
        for i, answer in zip(tickets, answers)
    }  # fmt: skip


def align_scenario(model_dir: Path, folder: Path) -> Path:
    """A store where triage:v1 (rude answers) is production and style:v1 (polite) beside it, with 24 A/B
    choices of style's answer over triage's; returns the store file."""
    import contextlib

    from tuneloop.store.db import connect
    from tuneloop.store.feedback import record_preference
    from tuneloop.store.versions import promote, register

    store = folder / "store.sqlite3"
    v1, style = train_versions(model_dir, folder)
    with contextlib.closing(connect(store)) as conn:
        promote(conn, register(conn, v1).id, "first release")
        register(conn, style)
        tickets = range(3000, 3024)
        rude, polite = log_answers(conn, v1, "triage:v1", "triage", tickets), log_answers(conn, style, "style:v1", "style", tickets)
        for i in tickets:
            record_preference(conn, polite[i], rude[i])
    return store
