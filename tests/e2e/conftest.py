"""A live server on the tiny Llama: two random-LoRA versions in a temporary store, uvicorn in a thread."""

from __future__ import annotations

import pytest

from helpers import random_lora_run, running


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
