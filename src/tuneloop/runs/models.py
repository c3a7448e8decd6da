"""Load a finished run's models: the base it was trained from, and the base plus what it trained."""

from __future__ import annotations

from pathlib import Path

from tuneloop.objectives import get_task
from tuneloop.runs.folder import RunDir


def run_artifact(run_dir: str | Path) -> Path:
    """The folder holding what the run trained (``adapter/`` or ``model/``, by method)."""
    return RunDir.existing(run_dir).artifact()


def run_labels(run_dir: str | Path) -> list[str] | None:
    """Class names a classification run was trained on (None for other tasks)."""
    return RunDir(Path(run_dir)).labels()


def load_base_model(run_dir: str | Path):
    """The run's starting model, untouched, with the run's tokenizer (chat template included).

    For classification that is the base encoder with the same seeded fresh head training began from.
    """
    from transformers import AutoTokenizer, set_seed

    run = RunDir.existing(run_dir)
    artifact, config = run.artifact(), run.config()
    set_seed(config.train.seed)
    model = get_task(config.task).load_model(config.model, run.labels())
    tokenizer = AutoTokenizer.from_pretrained(str(artifact))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def load_tuned_model(run_dir: str | Path):
    """Base model with the run's trained parameters, and the run's tokenizer.

    For peft methods this is exactly ``peft.PeftModel.from_pretrained(base, run_dir / "adapter")``.
    """
    base, tokenizer = load_base_model(run_dir)
    run = RunDir.existing(run_dir)
    model = run.method().load(base, run.artifact())
    return model.eval(), tokenizer
