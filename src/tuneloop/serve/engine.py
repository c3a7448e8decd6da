"""One base model in memory, many LoRA adapters, concurrent requests generated in shared batches.

Requests queue up; a single worker thread takes up to ``max_batch`` of those with the same
sampling settings and generates them together. peft's mixed-adapter batches
(``adapter_names=[...]``, one entry per row, ``"__base__"`` for the plain base) let rows of
different adapters share one forward pass. New tokens reach each request as they are produced
(for streaming), through a streamer that splits every generation step by row.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuneloop.errors import TuneloopError

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass
class Generation:
    """One request's prompt and settings, and what has been generated for it so far."""

    prompt: str
    adapter: str = BASE
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    on_text: Callable[[str], None] | None = None  # called with each new piece of text
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    finish_reason: str = "stop"
    error: Exception | None = None
    text: str = ""  # generated text so far (never ends inside a multi-byte character)

    def sampling_key(self) -> tuple:
        return (self.temperature > 0, round(self.temperature, 4), round(self.top_p, 4))


class Engine:
    """Thread-safe batched generation; ``submit`` returns at once, ``Generation.finished`` says when done."""

    def __init__(self, model, tokenizer, max_batch: int = 8, max_wait_s: float = 0.01):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.adapters: dict[str, Path] = {}
        self._pending: queue.Queue[Generation] = queue.Queue()
        self._load_lock = threading.Lock()
        self._worker = threading.Thread(target=self._serve_forever, name="tuneloop-engine", daemon=True)
        self._worker.start()
        self.batches_run = 0
        self.rows_generated = 0

    # --- adapters ------------------------------------------------------------------------------
    def ensure_adapter(self, name: str, folder: Path) -> None:
        """Load the adapter in ``folder`` under ``name`` the first time it is asked for."""
        with self._load_lock:
            if name in self.adapters:
                return
            from peft import PeftModel

            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
            self.model.eval()
            self.adapters[name] = Path(folder)

    # --- requests ------------------------------------------------------------------------------
    def submit(self, generation: Generation) -> Generation:
        if generation.adapter != BASE and generation.adapter not in self.adapters:
            raise TuneloopError(f"adapter {generation.adapter!r} is not loaded")
        self._pending.put(generation)
        return generation

    def generate(self, generation: Generation, timeout: float | None = None) -> Generation:
        """Submit and wait (for callers that do not stream)."""
        self.submit(generation).finished.wait(timeout)
        if generation.error is not None:
            raise generation.error
        return generation

    # --- the worker ----------------------------------------------------------------------------
    def _serve_forever(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._run_batch(batch)
            except Exception as err:  # a failed batch fails its requests, never the worker
                for generation in batch:
                    generation.error = err
            finally:
                for generation in batch:
                    generation.finished.set()

    def _next_batch(self) -> list[Generation]:
        """The oldest request, plus others with the same sampling settings that arrive within max_wait_s."""
        first = self._pending.get()
        batch, deferred = [first], []
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                candidate = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            (batch if candidate.sampling_key() == first.sampling_key() else deferred).append(candidate)
        for generation in deferred:
            self._pending.put(generation)
        return batch

    def _run_batch(self, batch: list[Generation]) -> None:
        import torch

        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"
        inputs = tokenizer([g.prompt for g in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        for generation, mask in zip(batch, inputs["attention_mask"]):
            generation.prompt_tokens = int(mask.sum())
        settings = dict(
            max_new_tokens=max(g.max_tokens for g in batch),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            streamer=RowStreamer(batch, tokenizer),
        )
        first = batch[0]
        if first.temperature > 0:
            settings.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
        else:
            settings.update(do_sample=False)
        if self.adapters:
            settings["adapter_names"] = [g.adapter for g in batch]
        with torch.no_grad():
            self.model.generate(**inputs.to(self.model.device), **settings)
        self.batches_run += 1
        self.rows_generated += len(batch)


class RowStreamer:
    """transformers streamer that hands each row's new tokens to its own request.

    ``put`` receives the prompt first (ignored), then one token per row per step.
    """

    def __init__(self, batch: list[Generation], tokenizer):
        self.batch = batch
        self.tokenizer = tokenizer
        self.prompt_seen = False
        self.done = [False] * len(batch)

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if not self.done[row]:
                self._append(row, token)

    def _append(self, row: int, token: int) -> None:
        generation = self.batch[row]
        if token == self.tokenizer.eos_token_id:
            self.done[row] = True
            generation.finish_reason = "stop"
            return
        generation.token_ids.append(token)
        text = self.tokenizer.decode(generation.token_ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):  # hold back half of a multi-byte character
            piece, generation.text = text[len(generation.text) :], text
            if piece and generation.on_text is not None:
                generation.on_text(piece)
        if len(generation.token_ids) >= generation.max_tokens:
            self.done[row] = True
            generation.finish_reason = "length"

    def end(self) -> None:
        for row, generation in enumerate(self.batch):
            if not self.done[row] and len(generation.token_ids) >= generation.max_tokens:
                generation.finish_reason = "length"
