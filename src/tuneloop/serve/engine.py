"""One base model in memory, many LoRA adapters, concurrent requests generated together.

Continuous batching: a single worker thread keeps one batch of running requests and advances all
of them by one token per forward pass. A request that arrives while others run joins at the next
step: its prompt is prefilled (together with any others that arrived meanwhile) and its key/value
cache is merged into the running batch's; a request that finishes leaves at once and its row is
dropped. So the batch stays as full as the traffic allows, no request waits for another to finish,
and no step is spent on finished rows. Clients that wait for one answer before sending the next
(chat users, most scripts) would otherwise fall into groups that take turns with part-full batches.

Rows of one batch may use different adapters (peft's mixed-adapter batches: ``adapter_names``, one
entry per row, ``"__base__"`` for the plain base) and different sampling settings (each row is
sampled with its own temperature and top-p). New tokens reach each request as they are produced,
for streaming. A row whose sampling fails (a value the sampler cannot compute) fails alone with its
own error; the other rows of its batch go on. Likewise a prompt whose prefill fails: the arrivals of
that pass are prefilled again one by one, so only the one that breaks it fails and the running batch
goes on. A failed decode step (no request value is known to cause one) fails the rows it advanced.

The batch's key/value cache (left-padded, growing in place) is in :mod:`tuneloop.serve.batch_cache`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tuneloop.errors import TuneloopError
from tuneloop.serve.batch_cache import RunningBatch
from tuneloop.serve.prompt_encoder import PromptEncoder

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
GREEDY_BELOW = 1e-4  # temperatures below this are sampled greedily: their limit, and logits / T would overflow


@dataclass
class Generation:
    """One request's prompt and settings, and what has been generated for it so far."""

    prompt: str
    adapter: str = BASE
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    on_text: Callable[[str], None] | None = None  # called with each new piece of text
    on_end: Callable[[], None] | None = None  # called once when the request ends (answered or failed), after its last on_text
    prompt_ids: list[int] | None = None  # the prompt already tokenised (else ``prompt`` is encoded as raw text)
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    finish_reason: str = "stop"
    error: Exception | None = None
    abandoned: bool = False  # set when the client has gone away: generation stops at the next step

    def end(self) -> None:
        """Mark the request done (``finished``), then tell ``on_end``."""
        self.finished.set()
        if self.on_end is not None:
            self.on_end()
    text: str = ""  # generated text so far (never ends inside a multi-byte character)


@dataclass
class EngineStats:
    """Counters for /metrics and benchmarks: forward passes, and the rows they advanced."""

    prefills: int = 0  # forward passes over newly admitted prompts
    steps: int = 0  # decode forward passes (one new token for every running row)
    row_steps: int = 0  # sum of the running rows over decode steps (row_steps / steps = mean batch)
    requests_finished: int = 0
    busy_seconds: float = 0.0  # time spent inside forward passes and sampling


class Engine:
    """Thread-safe batched generation; ``submit`` returns at once, ``Generation.finished`` says when done."""

    def __init__(self, model, tokenizer, max_batch: int = 8, max_wait_s: float = 0.01):
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = PromptEncoder(tokenizer)  # every tokenizer call of the server goes through its lock
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s  # an idle engine waits this long for a burst to arrive together
        self.adapters: dict[str, Path] = {}
        self.stats = EngineStats()
        self._running = 0  # rows in the running batch, as of the last step
        self._adapter_mode: tuple | None = None  # how the adapters are set up now (see _adapters_for)
        self.stop_ids = stop_token_ids(model, tokenizer)
        self._pending: queue.Queue[Generation] = queue.Queue()
        self._model_lock = threading.Lock()  # adapters load between forward passes, never during one
        self._worker = threading.Thread(target=self._serve_forever, name="tuneloop-engine", daemon=True)
        self._worker.start()

    # --- adapters ------------------------------------------------------------------------------
    def ensure_adapter(self, name: str, folder: Path) -> None:
        """Load the adapter in ``folder`` under ``name`` the first time it is asked for."""
        with self._model_lock:
            if name in self.adapters:
                return
            from peft import PeftModel

            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
            self.model.eval()
            self.adapters[name] = Path(folder)
            self._adapter_mode = None  # loading may change which adapter is active

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
        batch = RunningBatch()
        while True:
            arrivals = self._arrivals(idle=not batch.rows)
            with self._model_lock:
                started = time.perf_counter()
                if arrivals:
                    self._admit_each_failing_alone(batch, arrivals)
                if batch.rows:
                    try:
                        self._step(batch)
                    except Exception as err:  # a failed decode pass fails the rows it advanced, never the worker
                        failed(batch.rows, err)
                        batch = RunningBatch()
                self.stats.busy_seconds += time.perf_counter() - started
            self._release_finished(batch)

    def _admit_each_failing_alone(self, batch, arrivals: list[Generation]) -> None:
        """Admit the arrivals together; if their prefill fails, admit each alone, so a request that breaks a
        forward pass fails by itself, and neither the other arrivals nor the running batch notice."""
        try:
            self._admit(batch, arrivals)  # (the running batch changes only once the pass has succeeded)
            return
        except Exception as err:
            if len(arrivals) == 1:
                failed([Row(arrivals[0])], err)
                return
        for generation in arrivals:
            try:
                self._admit(batch, [generation])
            except Exception as err:
                failed([Row(generation)], err)

    def _arrivals(self, idle: bool) -> list[Generation]:
        """Requests to admit now: all that are waiting, up to the free rows. An idle engine blocks for
        the first one and then gives a burst ``max_wait_s`` to arrive, so it starts with one prefill."""
        room = self.max_batch - self._running
        arrivals: list[Generation] = []
        if idle:
            arrivals.append(self._pending.get())
            deadline = time.monotonic() + self.max_wait_s
            while len(arrivals) < room:
                try:
                    arrivals.append(self._pending.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
        while len(arrivals) < room:
            try:
                arrivals.append(self._pending.get_nowait())
            except queue.Empty:
                break
        return arrivals

    def _admit(self, batch, arrivals: list[Generation]) -> None:
        """Prefill the new prompts together (left-padded), sample each one's first token, merge their cache in."""
        import torch

        input_ids, mask = self._left_padded([g.prompt_ids if g.prompt_ids is not None else self.encoder.encode(g.prompt) for g in arrivals])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        adapter_kwargs = self._adapters_for(arrivals)
        with torch.no_grad():
            output = self.model(
                input_ids=input_ids.to(self.model.device), attention_mask=mask.to(self.model.device),
                position_ids=positions.to(self.model.device), use_cache=True, logits_to_keep=1, **adapter_kwargs,
            )  # fmt: skip
        self.stats.prefills += 1
        rows = [Row(generation, prompt_tokens=int(row_mask.sum())) for generation, row_mask in zip(arrivals, mask)]
        for row in rows:
            row.generation.prompt_tokens = row.length = row.prompt_tokens
        batch.merge(rows, output.past_key_values, mask.to(self.model.device))
        self._take_tokens(rows, output.logits[:, -1, :])

    def _left_padded(self, prompts: list[list[int]]):
        """(input ids, attention mask), each [rows, longest prompt], prompts aligned to the right."""
        import torch

        width = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            if ids:
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                mask[row, width - len(ids) :] = 1
        return input_ids, mask

    def _step(self, batch) -> None:
        """One new token for every running row."""
        import torch

        rows = batch.rows
        last = torch.tensor([[row.next_token] for row in rows], device=self.model.device)
        positions = torch.tensor([[row.length] for row in rows], device=self.model.device)
        batch.extend_mask()
        adapter_kwargs = self._adapters_for([row.generation for row in rows])
        with torch.no_grad():
            output = self.model(
                input_ids=last, attention_mask=batch.mask, position_ids=positions, cache=batch.cache,
                use_cache=True, logits_to_keep=1, **adapter_kwargs,
            )  # fmt: skip  (the batch's cache grows in place)
        for row in rows:
            row.length += 1
        self.stats.steps += 1
        self.stats.row_steps += len(rows)
        self._take_tokens(rows, output.logits[:, -1, :])

    def _adapters_for(self, generations: list[Generation]) -> dict:
        """Set the adapters up for one pass over these rows; returns extra forward arguments.

        peft's per-row ``adapter_names`` path splits every adapted layer's input by adapter, so it
        is used only for a batch that mixes adapters; rows that all use one adapter run with it
        active, rows that all use the base with adapter layers switched off. Switching walks every
        module of the model, so it happens only when the kind of batch changes, not at every step.
        """
        names = {g.adapter for g in generations}
        if not self.adapters:
            return {}
        wanted = ("off",) if names == {BASE} else ("only", *names) if len(names) == 1 else ("mixed",)
        if wanted != self._adapter_mode:
            if wanted[0] == "off":
                self.model.base_model.disable_adapter_layers()
            else:
                if self._adapter_mode in (None, ("off",)):
                    self.model.base_model.enable_adapter_layers()
                if wanted[0] == "only":
                    self.model.set_adapter(wanted[1])
            self._adapter_mode = wanted
        return {"adapter_names": [g.adapter for g in generations]} if wanted == ("mixed",) else {}

    def _take_tokens(self, rows: list["Row"], logits) -> None:
        """Sample each row's next token and hand it to its request (the token is fed in at the next step).

        A row whose sampling raises is finished with that error; the others are unaffected."""
        greedy = logits.argmax(dim=-1).tolist()
        for index, row in enumerate(rows):
            if row.generation.abandoned:  # nobody reads it any more: free its row for others
                row.done = True
                continue
            try:
                token = sample_token(logits[index], row.generation) if samples(row.generation) else greedy[index]
            except Exception as err:  # this row's values broke its sampling: it alone fails
                row.generation.error, row.done = err, True
                continue
            row.next_token = token
            row.done = self._append(row.generation, token)

    def _append(self, generation: Generation, token: int) -> bool:
        """Add one token to the request's text; True when the request is complete."""
        if token in self.stop_ids:
            generation.finish_reason = "stop"
            self._show(generation, self.encoder.decode(generation.token_ids), final=True)
            return True
        generation.token_ids.append(token)
        text = self.encoder.decode(generation.token_ids)
        final = len(generation.token_ids) >= generation.max_tokens
        if self._show(generation, text, final):
            generation.finish_reason = "stop"
            self._drop_tokens_past_the_text(generation)
            return True
        if final:
            generation.finish_reason = "length"
        return final

    def _drop_tokens_past_the_text(self, generation: Generation) -> None:
        """After a stop string: keep the tokens that spell the answer's text, not those of the stop string, so
        ``completion_tokens`` counts what the client got (a token the stop string starts inside stays)."""
        ids = generation.token_ids
        while ids and self.encoder.decode(ids[:-1]).startswith(generation.text):
            ids.pop()

    @staticmethod
    def _show(generation: Generation, text: str, final: bool) -> bool:
        """Pass the new part of ``text`` on to the request; True when it reached a stop string."""
        if text.endswith("\ufffd") and not final:  # hold back half of a multi-byte character
            return False
        shown, stopped = text_before_stop(text, generation.stop, final)
        piece = shown[len(generation.text) :]
        generation.text = shown
        if piece and generation.on_text is not None:
            generation.on_text(piece)
        return stopped

    def _release_finished(self, batch) -> None:
        for row in batch.drop_finished():
            self.stats.requests_finished += 1
            row.generation.end()
        self._running = len(batch.rows)


def failed(rows: list["Row"], err: Exception) -> None:
    """End these rows' requests with ``err``."""
    for row in rows:
        row.generation.error = err
        row.generation.end()


@dataclass
class Row:
    """A running request: its cache row's real length and the token to feed in next."""

    generation: Generation
    prompt_tokens: int = 0
    length: int = 0  # real tokens in its cache (its next position id)
    next_token: int = 0
    done: bool = False


def samples(generation: Generation) -> bool:
    """Whether the row is sampled (False: argmax). Temperatures too small to divide by are greedy, their limit."""
    return not generation.temperature < GREEDY_BELOW  # (a NaN temperature is sampled, and fails its own row)


def sample_token(logits, generation: Generation) -> int:
    """One row's next token by temperature + nucleus (top-p) sampling; raises RuntimeError on non-finite values."""
    import torch

    probs = torch.softmax(logits.float() / generation.temperature, dim=-1)
    if generation.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(0) - sorted_probs > generation.top_p  # tokens past the nucleus
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1)[0])


def text_before_stop(text: str, stops: tuple[str, ...], final: bool) -> tuple[str, bool]:
    """(the part of ``text`` to show, whether a stop string was reached). Text before the first stop
    string is shown; while not ``final``, a tail that may be the start of a stop string is held back."""
    found = [text.find(stop) for stop in stops if stop and stop in text]
    if found:
        return text[: min(found)], True
    if final:
        return text, False
    held = max((size for stop in stops for size in range(len(stop) - 1, 0, -1) if text.endswith(stop[:size])), default=0)
    return text[: len(text) - held], False


def stop_token_ids(model, tokenizer) -> set[int]:
    """End-of-sequence ids: the tokenizer's and the model's generation config's (end of turn)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {i for i in ids if i is not None}
