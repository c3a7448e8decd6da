"""``tuneloop serve``: load the base model once, open the store, run uvicorn."""

from __future__ import annotations

from pathlib import Path

from tuneloop.models.load import load_causal_lm
from tuneloop.progress import console
from tuneloop.serve.app import Limits, create_app
from tuneloop.serve.engine import Engine
from tuneloop.serve.malloc import cap_malloc_arenas
from tuneloop.serve.packed_linear import pack_linear_weights
from tuneloop.serve.request_log import checked_log_mode
from tuneloop.store.db import Store
from tuneloop.text.tokenize import ensure_chat_template


def build_server(base: str, store_path: Path | None = None, max_batch: int = 8, max_prompt_tokens: int = 2048, max_tokens: int = 512,
                 log_prompts: str = "scrubbed", max_request_bytes: int = 1_000_000, api_docs: bool = False):  # fmt: skip
    """The app with its engine and store (used by ``serve`` and by tests)."""
    checked_log_mode(log_prompts)  # an unknown mode fails before the model loads
    model, tokenizer = load_causal_lm(base)
    ensure_chat_template(tokenizer)
    pack_linear_weights(model, rows_hint=max_batch)  # faster few-row decode steps on CPU
    engine = Engine(model.eval(), tokenizer, max_batch=max_batch)
    limits = Limits(max_prompt_tokens, max_tokens, max_request_bytes)
    return create_app(engine, Store(store_path), base, limits, log_prompts, api_docs)


def serve(base: str, host: str, port: int, store_path: Path | None, max_batch: int, max_prompt_tokens: int, max_tokens: int,
          log_prompts: str = "scrubbed", max_request_bytes: int = 1_000_000, api_docs: bool = False) -> None:  # fmt: skip
    import uvicorn

    cap_malloc_arenas()  # before the model and the engine's threads allocate
    app = build_server(base, store_path, max_batch, max_prompt_tokens, max_tokens, log_prompts, max_request_bytes, api_docs)
    console().print(f"serving {base} at http://{host}:{port}/  (API under /v1, key required; web page at /; "
                    f"request log: {log_prompts} prompts and answers)")  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="warning")

