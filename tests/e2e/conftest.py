"""A live server on the tiny Llama: two random-LoRA versions in a temporary store, uvicorn in a thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import running


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


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """(base url, api key, store) of a running server with versions triage:v1 (production) and triage:v2."""
    from tuneloop.serve.run import build_server
    from tuneloop.store.keys import create_key
    from tuneloop.store.versions import promote, register

    home = tmp_path_factory.mktemp("serve")
    app = build_server(str(tiny_model_dir), home / "store.sqlite3", max_batch=8, max_prompt_tokens=200, max_tokens=64)
    conn = app.state.store.connection()
    for number, seed in ((1, 1), (2, 2)):
        register(conn, random_lora_run(tiny_model_dir, home / f"run{number}", "triage", seed))
    promote(conn, "triage:v1", "first release")
    key = create_key(conn, "tests")
    with running(app) as url:
        yield url, key, app
