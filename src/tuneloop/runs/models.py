"""Load a finished run's models: the base it was trained from, and the base plus what it trained."""

from __future__ import annotations

from pathlib import Path

from tuneloop.config import load_config
from tuneloop.errors import TuneloopError
from tuneloop.methods import get_method
from tuneloop.objectives import get_task


def run_artifact(run_dir: str | Path) -> Path:
    """The folder holding what the run trained (``adapter/`` or ``model/``, by method)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise TuneloopError(f"{run_dir} is not a tuneloop run folder (no config.yaml)")
    method = get_method(load_config(run_dir / "config.yaml").method.name)
    folder = run_dir / method.artifact
    if not folder.is_dir():
        raise TuneloopError(f"{run_dir} has no {method.artifact}/: training did not finish; re-run it with --resume")
    return folder


def run_labels(run_dir: str | Path) -> list[str] | None:
    """Class names a classification run was trained on (None for other tasks)."""
    import json

    manifest = Path(run_dir) / "data.json"
    return json.loads(manifest.read_text()).get("labels") if manifest.exists() else None


def load_base_model(run_dir: str | Path):
    """The run's starting model, untouched, with the run's tokenizer (chat template included).

    For classification that is the base encoder with the same seeded fresh head training began from.
    """
    from transformers import AutoTokenizer, set_seed

    artifact = run_artifact(run_dir)
    config = load_config(Path(run_dir) / "config.yaml")
    set_seed(config.train.seed)
    model = get_task(config.task).load_model(config.model, run_labels(run_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(artifact))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def load_tuned_model(run_dir: str | Path):
    """Base model with the run's trained parameters, and the run's tokenizer.

    For peft methods this is exactly ``peft.PeftModel.from_pretrained(base, run_dir / "adapter")``.
    """
    base, tokenizer = load_base_model(run_dir)
    method = get_method(load_config(Path(run_dir) / "config.yaml").method.name)
    model = method.load(base, run_artifact(run_dir))
    return model.eval(), tokenizer
