"""Helpers shared by tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from pathlib import Path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_chat_rows(n: int = 40) -> list[dict]:
    """A learnable toy task: answer the colour of a named fruit."""
    fruits = {"apple": "red", "banana": "yellow", "lime": "green", "plum": "purple", "orange": "orange"}
    rows = []
    for i in range(n):
        fruit = list(fruits)[i % len(fruits)]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Ticket {i}: what colour is the {fruit}?"},
                    {"role": "assistant", "content": fruits[fruit]},
                ]
            }
        )
    return rows


def toy_label_rows(n: int = 60) -> list[dict]:
    """A learnable toy classification: the topic word of a short ticket decides its label."""
    topics = {"billing": "refunds invoices billing", "bug": "dashboard is down", "account": "login fails password"}
    rows = []
    for i in range(n):
        label = list(topics)[i % len(topics)]
        rows.append({"text": f"{topics[label]}: ticket {i}, please help {'!' * (i % 4)}", "label": label})
    return rows


def tiny_config(model_dir: Path, data: Path, out: Path, **train_overrides):
    from tuneloop.config import load_config

    overrides = {
        "model.name": str(model_dir),
        "data.path": [str(data)],
        "data.format": "chat",
        "data.val_fraction": 0.2,
        "data.test_fraction": 0.2,
        "method.r": 4,
        "train.learning_rate": 5e-3,
        "train.tokens_per_batch": 256,
        "train.pack_length": 128,
        "train.early_stopping_patience": 0,
        "out": str(out),
    }
    overrides.update({f"train.{k}": v for k, v in train_overrides.items()})
    return load_config(None, overrides)


def run_cli(*args: str):
    """Invoke the full ``tuneloop`` command in-process; returns click's Result."""
    from click.testing import CliRunner

    from tuneloop.cli import build_cli

    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(app):
    """uvicorn serving ``app`` on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def random_lora_run(model_dir: Path, folder: Path, project: str, seed: int) -> Path:
    """A finished run folder whose adapter has random (not zero) B matrices, so its answers differ from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneloop.config import dump_config, load_config

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(folder / "adapter")
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(folder / "adapter")
    config = load_config(None, {"project": project, "out": str(folder), "model.name": str(model_dir), "data.system_prompt": "Be brief."})
    (folder / "config.yaml").write_text(dump_config(config))
    (folder / "data.json").write_text(json.dumps({"dataset_hash": f"{seed:064d}"}))
    return folder


# Preference pairs with an obvious rule, and a reward run's arguments: shared by the reward, PPO and GRPO tests.
ISSUES = ["the dashboard is down", "my invoice is wrong", "login fails", "exports time out", "alerts never arrive"]
POLITE = ["Thank you for writing in, we are on it.", "Thanks for your patience, a fix is coming.", "Sorry for the trouble, we will help."]
RUDE = ["Not our problem.", "Read the docs yourself.", "Stop writing to us."]


def polite_over_rude_rows(n: int = 60, seed: int = 0) -> list[dict]:
    """An obvious rule: the polite reply is preferred over the rude one, whatever the ticket."""
    rng = random.Random(seed)
    return [
        {"prompt": f"Ticket {i}: {rng.choice(ISSUES)}", "chosen": rng.choice(POLITE), "rejected": rng.choice(RUDE)}
        for i in range(n)
    ]


def reward_args(model_dir, data, out, *extra):
    return (
        "train", "--task", "reward", "--model", str(model_dir), "--data", str(data), "--format", "pairs",
        "--method", "lora", "--r", "4", "--lr", "5e-3", "--max-steps", "24", "--tokens-per-batch", "512",
        "--val-fraction", "0.2", "--test-fraction", "0.25", "--early-stopping-patience", "0", "--threads", "1",
        "--out", str(out), *extra,
    )  # fmt: skip


def build_name_aware_llama(folder: Path) -> Path:
    """A tiny random Llama whose tokenizer has also seen the gender-coded first names of the bias word
    lists, so a few dozen steps can learn what a name predicts (the skewed-ticket bias tests)."""
    from tuneloop.evaluate.bias_terms import GENDER_NAMES
    from tuneloop.models.tiny import DEFAULT_CORPUS, build_tiny_llama

    names = " ".join(name for pair in GENDER_NAMES for name in pair)
    return build_tiny_llama(folder, corpus=DEFAULT_CORPUS + f" {names}" * 20)
