"""The HTTP API: OpenAI-compatible completions over the engine, feedback, health and metrics.

Every endpoint but ``/healthz`` needs ``Authorization: Bearer <key>`` (``tuneloop keys create``).
Errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}`` so the official
client raises its usual exceptions. Each answer is logged in the store; its ``id`` is the logged
request's id, which ``/v1/feedback`` refers to, and its ``system_fingerprint`` names the version that
answered (``<project>:v<n>``, or ``base``), so an answer asked of ``<project>@production`` is
attributable (the web page shows it beside every answer).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import Request  # at module level: route annotations are resolved from this namespace
from pydantic import BaseModel, Field

from tuneloop.errors import NotFoundError, StoreError, TuneloopError
from tuneloop.serve.auth import KeyChecker, bearer_key
from tuneloop.serve.catalog import ModelNotServable, listed_models, resolve_served
from tuneloop.serve.engine import Generation
from tuneloop.serve.metrics import ServerMetrics
from tuneloop.serve.request_log import request_log_texts
from tuneloop.store.feedback import record_correction, record_preference, record_rating
from tuneloop.store.requests import log_request, new_request_id


@dataclass(frozen=True)
class Limits:
    max_prompt_tokens: int = 2048
    max_tokens: int = 512


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class StreamOptions(BaseModel):
    include_usage: bool = False  # a last chunk (no choices) carries the request's token counts


class ChatRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stream: bool = False
    stream_options: StreamOptions | None = None


class CompletionRequest(BaseModel):
    model: str
    prompt: str
    max_tokens: int | None = Field(16, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stream: bool = False
    stream_options: StreamOptions | None = None


class FeedbackRequest(BaseModel):
    kind: Literal["rating", "preference", "correction"]
    request_id: str | None = None  # rating, correction
    rating: Literal["up", "down"] | None = None
    chosen_id: str | None = None  # preference
    rejected_id: str | None = None
    correction: str | None = None
    comment: str | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code


def create_app(engine, store, base_model: str, limits: Limits = Limits(), log_prompts: str = "scrubbed"):
    """The FastAPI application; ``engine`` holds the model, ``store`` the versions, keys and logs;
    ``log_prompts`` (scrubbed, full, none: see :mod:`tuneloop.serve.request_log`) what the log keeps of each text."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

    app = FastAPI(title="tuneloop", description="OpenAI-compatible API over fine-tuned adapters")
    keys, counters = KeyChecker(store), ServerMetrics()
    log_texts = request_log_texts(log_prompts)
    app.state.engine, app.state.store, app.state.base_model = engine, store, base_model

    @app.exception_handler(ApiError)
    async def api_error(_request, err: ApiError):
        body = {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}}
        return JSONResponse(body, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request, err: RequestValidationError):
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return await api_error(_request, ApiError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param))

    def authorise(request: Request) -> str:
        key = bearer_key(request.headers.get("authorization"))
        name = keys.name_of(key) if key else None
        if name is None:
            raise ApiError(401, "missing or invalid API key (Authorization: Bearer <key>)", "authentication_error", code="invalid_api_key")
        return name

    def served(name: str):
        try:
            return resolve_served(store.connection(), engine, base_model, name)
        except NotFoundError as err:
            raise ApiError(404, str(err), param="model", code="model_not_found") from None
        except (ModelNotServable, StoreError) as err:
            raise ApiError(400, str(err), param="model") from None

    def checked_prompt(prompt: str) -> int:
        tokens = len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if tokens > limits.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {tokens} tokens; this server accepts at most {limits.max_prompt_tokens}", param="messages", code="context_length_exceeded")
        return tokens

    def checked_max_tokens(requested: int | None, default: int) -> int:
        if requested is None:
            return min(default, limits.max_tokens)
        value = requested
        if value > limits.max_tokens:
            raise ApiError(400, f"max_tokens {value} is above this server's limit of {limits.max_tokens}", param="max_tokens")
        return value

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "base_model": base_model, "adapters_loaded": len(engine.adapters)}

    @app.get("/metrics")
    async def metrics(request: Request):
        authorise(request)
        return PlainTextResponse(counters.render(engine), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models(request: Request):
        authorise(request)
        return {"object": "list", "data": listed_models(store.connection())}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request):
        key_name = authorise(request)
        target = served(body.model)
        messages = [m.model_dump() for m in body.messages]
        prompted = messages
        if target.system_prompt and messages[0]["role"] != "system":  # as the version was trained
            prompted = [{"role": "system", "content": target.system_prompt}, *messages]
        prompt = engine.tokenizer.apply_chat_template(prompted, tokenize=False, add_generation_prompt=True)
        # The log keeps what the client sent, so answers of different versions to it compare as one prompt.
        job = Job(body.model, target, json.dumps(messages, ensure_ascii=False), prompt, key_name, "chat")
        return await answer(job, checked_max_tokens(body.max_completion_tokens or body.max_tokens, 256), body)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        key_name = authorise(request)
        target = served(body.model)
        job = Job(body.model, target, body.prompt, body.prompt, key_name, "text")
        return await answer(job, checked_max_tokens(body.max_tokens, 16), body)

    async def answer(job: "Job", max_tokens: int, body):
        checked_prompt(job.prompt)
        loop, pieces = asyncio.get_running_loop(), asyncio.Queue()
        generation = Generation(
            job.prompt, job.target.adapter, max_tokens, body.temperature, body.top_p,
            on_text=lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece),
        )  # fmt: skip
        job.started = time.perf_counter()
        engine.submit(generation)
        if body.stream:
            with_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(stream_events(job, generation, pieces, with_usage), media_type="text/event-stream")
        await asyncio.get_running_loop().run_in_executor(None, generation.finished.wait)
        finish(job, generation)
        return job.response(generation)

    async def stream_events(job: "Job", generation, pieces: asyncio.Queue, with_usage: bool):
        while not (generation.finished.is_set() and pieces.empty()):
            try:
                piece = await asyncio.wait_for(pieces.get(), timeout=0.05)
            except asyncio.TimeoutError:
                continue
            yield sse(job.chunk(piece, None))
        finish(job, generation)
        yield sse(job.chunk("", generation.finish_reason))
        if with_usage:
            yield sse(job.usage_chunk(generation))
        yield "data: [DONE]\n\n"

    def finish(job: "Job", generation) -> str:
        seconds = time.perf_counter() - job.started
        if generation.error is not None:
            counters.record(job.endpoint, job.model, 500)
            raise ApiError(500, f"generation failed: {generation.error}", "server_error")
        counters.record(job.endpoint, job.model, 200, seconds, generation.prompt_tokens, len(generation.token_ids))
        prompt, response = log_texts(job.logged_prompt, generation.text)
        return log_request(
            store.connection(), model=job.model, prompt=prompt, response=response,
            latency_ms=round(seconds * 1000, 1), version_id=job.target.version_id, project=job.target.project,
            prompt_tokens=generation.prompt_tokens, completion_tokens=len(generation.token_ids), api_key=job.key_name,
            request_id=job.request_id,
        )  # fmt: skip

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackRequest, request: Request):
        authorise(request)
        try:
            feedback_id = record_feedback(store.connection(), body)
        except NotFoundError as err:
            raise ApiError(404, str(err), param="request_id") from None
        except TuneloopError as err:
            raise ApiError(400, str(err)) from None
        return {"id": feedback_id, "object": "feedback", "kind": body.kind}

    mount_web_page(app)
    return app


def record_feedback(conn, body: FeedbackRequest) -> int:
    """Store one rating, preference or correction; missing fields are a clear 400."""
    required = {"rating": ("request_id", "rating"), "preference": ("chosen_id", "rejected_id"), "correction": ("request_id", "correction")}
    missing = [name for name in required[body.kind] if getattr(body, name) in (None, "")]
    if missing:
        raise TuneloopError(f"feedback of kind {body.kind!r} needs {', '.join(missing)}")
    if body.kind == "rating":
        return record_rating(conn, body.request_id, body.rating, body.comment)
    if body.kind == "preference":
        return record_preference(conn, body.chosen_id, body.rejected_id, body.comment)
    return record_correction(conn, body.request_id, body.correction, body.comment)


def mount_web_page(app) -> None:
    """``/``: the chat / compare / rate page (static files in ``serve/web``)."""
    from fastapi.responses import FileResponse

    page = Path(__file__).parent / "web" / "index.html"
    if page.exists():
        app.get("/", include_in_schema=False)(lambda: FileResponse(page))


@dataclass
class Job:
    """One request on its way through the engine, and the shapes of its answers."""

    model: str
    target: object  # catalog.Served
    logged_prompt: str
    prompt: str
    key_name: str
    kind: Literal["chat", "text"]
    started: float = 0.0
    request_id: str = field(default_factory=new_request_id)  # known before the answer, so chunks carry it

    @property
    def version(self) -> str:
        """The version that answers (what the log records), whatever alias the client asked for."""
        return self.target.version_id or "base"

    @property
    def endpoint(self) -> str:
        return "chat.completions" if self.kind == "chat" else "completions"

    @staticmethod
    def usage(generation) -> dict:
        prompt, completion = generation.prompt_tokens, len(generation.token_ids)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def response(self, generation) -> dict:
        usage = self.usage(generation)
        if self.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": generation.text}, "finish_reason": generation.finish_reason}
            return {"id": self.request_id, "object": "chat.completion", "created": int(time.time()), "model": self.model, "system_fingerprint": self.version, "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": generation.text, "finish_reason": generation.finish_reason, "logprobs": None}
        return {"id": self.request_id, "object": "text_completion", "created": int(time.time()), "model": self.model, "system_fingerprint": self.version, "choices": [choice], "usage": usage}

    def chunk(self, piece: str, finish_reason: str | None) -> dict:
        if self.kind == "chat":
            delta = {"content": piece} if piece or finish_reason is None else {}
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {"id": self.request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": self.model, "system_fingerprint": self.version, "choices": [choice]}
        choice = {"index": 0, "text": piece, "finish_reason": finish_reason, "logprobs": None}
        return {"id": self.request_id, "object": "text_completion", "created": int(time.time()), "model": self.model, "system_fingerprint": self.version, "choices": [choice]}

    def usage_chunk(self, generation) -> dict:
        """The last chunk of a stream asked for with ``stream_options.include_usage``: no choices, the usage."""
        kind = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {"id": self.request_id, "object": kind, "created": int(time.time()), "model": self.model, "system_fingerprint": self.version, "choices": [], "usage": self.usage(generation)}


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
