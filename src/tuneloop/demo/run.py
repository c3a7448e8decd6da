"""``tuneloop demo``: the whole loop on generated support tickets and the built-in SmolLM2.

generate a company CSV -> data check -> scrub personal data -> split -> LoRA fine-tune -> base vs tuned on the
held-out test split, beside few-shot baselines (the base model shown k = 0, 1, 3, 5 training
tickets), the forgetting measures on the general-ability suite and the hallucination audit
(is the product named in each answer one the ticket names?) -> report. Everything is
seeded; the figures printed are measured.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tuneloop.config import RunConfig
from tuneloop.data.pipeline import check_dataset
from tuneloop.demo.tickets import PII_ALLOW, PROMPT_TEMPLATE, SYSTEM_PROMPT, TARGET_COLUMNS, write_tickets_csv
from tuneloop.errors import TuneloopError
from tuneloop.evaluate.heldout import evaluate_run
from tuneloop.evaluate.summary import print_metrics
from tuneloop.models.load import load_tokenizer
from tuneloop.progress import console
from tuneloop.runs.folder import RunDir
from tuneloop.text.tokenize import token_counter
from tuneloop.train.run import train

DEMO_MODEL = "smollm2-135m-instruct"


def demo_config(data_path: Path, out: Path, seed: int) -> RunConfig:
    """The demo's settings; ``configs/support_triage.yaml`` holds the same (a test keeps them equal)."""
    return RunConfig.model_validate(
        {
            "project": "support-triage",
            "out": str(out),
            "model": {"name": DEMO_MODEL},
            "data": {
                "path": [str(data_path)],
                "format": "prompt_completion",
                "prompt_template": PROMPT_TEMPLATE,
                "target_columns": TARGET_COLUMNS,
                "system_prompt": SYSTEM_PROMPT,
                "val_fraction": 0.08,
                "test_fraction": 0.2,
                "seed": seed,
                "max_length": 384,
                "scrub_pii": True,
                "pii_allow": PII_ALLOW,
            },
            "method": {"name": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"},
            "train": {
                "max_steps": 60,
                "learning_rate": 2e-3,
                "tokens_per_batch": 1024,
                "pack_length": 512,
                "eval_steps": 30,
                "early_stopping_patience": 3,
                "seed": seed,
            },
            # The ticket is the context: the product named in the answer must be one the ticket names (the
            # category and priority are labels chosen from a fixed set, not quotes of the ticket).
            "eval": {
                "max_new_tokens": 40, "batch_size": 32, "primary": "json_field_accuracy",
                "hallucination": True, "grounded_fields": ["product"],
            },  # fmt: skip
        }
    )


def run_demo(out: Path, rows: int = 600, seed: int = 0, fresh: bool = True) -> dict:
    started = time.perf_counter()
    out = Path(out)
    clear_previous_demo(out, fresh)
    data_path = write_tickets_csv(out.parent / f"{out.name}-data" / "support_tickets.csv", n=rows, seed=seed)
    console().rule(f"1/4 data: {data_path}")
    config = demo_config(Path(data_path), out, seed)
    tokenizer = load_tokenizer(DEMO_MODEL)
    check_dataset(config.data, lambda data_format: token_counter(tokenizer, data_format))
    console().rule("2/4 LoRA fine-tuning of " + DEMO_MODEL)
    train(config)
    console().rule("3/4 base vs tuned on the held-out test split, few-shot baselines, forgetting")
    metrics = evaluate_run(out)
    console().rule("4/4 result")
    print_metrics(metrics, out)
    console().print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return metrics


def clear_previous_demo(out: Path, fresh: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if not RunDir(out).config_file.exists():
        raise TuneloopError(f"{out} exists and is not a tuneloop run; choose another --out")
    if not fresh:
        raise TuneloopError(f"{out} already holds a run; drop --keep to replace it")
    shutil.rmtree(out)
