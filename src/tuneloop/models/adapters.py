"""Load a finished run's model: the base it was trained from plus its saved adapter."""

from __future__ import annotations

from pathlib import Path


def load_tuned_model(run_dir: str | Path):
    """Base model + adapter of ``run_dir`` and the run's tokenizer (with its chat template).

    This is exactly ``peft.PeftModel.from_pretrained(base, run_dir / "adapter")``.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    from tuneloop.config import load_config
    from tuneloop.models.load import load_causal_lm

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    base, _ = load_causal_lm(config.model.name, config.model.allow_pickle, config.model.trust_remote_code)
    model = PeftModel.from_pretrained(base, str(run_dir / "adapter"))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "adapter"))
    return model, tokenizer
