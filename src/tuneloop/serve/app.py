"""The HTTP API: OpenAI-compatible completions over the engine, feedback, health and metrics.

Every route but those in ``PUBLIC_PATHS`` needs ``Authorization: Bearer <key>`` (``tuneloop keys create``).
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
from typing import Annotated, Any, Literal

from fastapi import Request  # at module level: route annotations are resolved from this namespace
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from tuneloop.errors import NotFoundError, StoreError, TuneloopError
from tuneloop.serve.auth import KeyChecker, bearer_key
from tuneloop.serve.body_limit import RequestSizeLimit
from tuneloop.serve.catalog import ModelNotServable, listed_models, resolve_served
from tuneloop.serve.engine import Generation
from tuneloop.serve.metrics import ServerMetrics
from tuneloop.serve.request_log import request_log_texts
from tuneloop.store.feedback import record_correction, record_preference, record_rating
from tuneloop.store.requests import log_request, new_request_id


PUBLIC_PATHS = frozenset({"/healthz", "/"})  # no key: a bare liveness answer, and the web page (it asks for a key)
MAX_STOP_STRINGS = 4  # as OpenAI's API
MAX_ID_CHARS = 64  # request ids are ``req_`` + 24 hex characters
MAX_CORRECTION_CHARS = 32_000
MAX_COMMENT_CHARS = 4_000


def encodable(text: str) -> str:
    """Refuse a lone surrogate (JSON's ``"\\ud800"``): no tokenizer can encode it, and no store should keep it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"holds a lone surrogate (\\u{ord(text[err.start]):04x}) at character {err.start}, which is not text") from None
    return text


Text = Annotated[str, AfterValidator(encodable)]


@dataclass(frozen=True)
class Limits:
    max_prompt_tokens: int = 2048
    max_tokens: int = 512
    max_request_bytes: int = 1_000_000  # checked before the body is read


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


class StreamOptions(BaseModel):
    include_usage: bool = False  # a last chunk (no choices) carries the request's token counts


# OpenAI request fields this server does not implement, with the values that ask for nothing: any
# other value is refused with a 400 naming the field, never silently ignored.
NOT_IMPLEMENTED = {
    "n": (1,), "logprobs": (False,), "top_logprobs": (0,), "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0),
    "logit_bias": ({},), "seed": (), "tools": ([],), "tool_choice": ("none",), "functions": ([],), "function_call": ("none",),
    "response_format": ({"type": "text"},), "echo": (False,), "best_of": (1,), "suffix": ("",),
}  # fmt: skip


class GenerationRequest(BaseModel):
    """What chat and text completions share: the model, sampling, stop strings and streaming."""

    model: str
    temperature: float = Field(0.0, ge=0.0, le=2.0, allow_inf_nan=False)  # below engine.GREEDY_BELOW: greedy, the limit
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    stop: Text | list[Text] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted, as OpenAI's end-user tag; not used
    n: Any = None
    logprobs: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    logit_bias: Any = None
    seed: Any = None

    @field_validator("stop")
    @classmethod
    def at_most_four_stop_strings(cls, stop):
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOP_STRINGS or any(not piece for piece in stops):
            raise ValueError(f"give at most {MAX_STOP_STRINGS} non-empty stop strings")
        return stop

    def stop_strings(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def asked_not_implemented(self) -> str | None:
        """The first field set to a value this server does not implement, or None."""
        for name, neutral in NOT_IMPLEMENTED.items():
            value = getattr(self, name, None)
            if value is not None and not any(value == v and type(value) is type(v) for v in neutral):
                return name
        return None


class ChatRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    top_logprobs: Any = None
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None


class CompletionRequest(GenerationRequest):
    prompt: Text
    max_tokens: int | None = Field(16, ge=1)
    echo: Any = None
    best_of: Any = None
    suffix: Any = None


class FeedbackRequest(BaseModel):
    kind: Literal["rating", "preference", "correction"]
    request_id: str | None = Field(None, max_length=MAX_ID_CHARS)  # rating, correction
    rating: Literal["up", "down"] | None = None
    chosen_id: str | None = Field(None, max_length=MAX_ID_CHARS)  # preference
    rejected_id: str | None = Field(None, max_length=MAX_ID_CHARS)
    correction: Annotated[str, StringConstraints(max_length=MAX_CORRECTION_CHARS), AfterValidator(encodable)] | None = None
    comment: Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS), AfterValidator(encodable)] | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code


def create_app(engine, store, base_model: str, limits: Limits = Limits(), log_prompts: str = "scrubbed", api_docs: bool = False):
    """The FastAPI application; ``engine`` holds the model, ``store`` the versions, keys and logs;
    ``log_prompts`` (scrubbed, full, none: see :mod:`tuneloop.serve.request_log`) what the log keeps of each text;
    ``api_docs`` serves ``/openapi.json``, ``/docs`` and ``/redoc`` (off by default)."""
    from fastapi import Depends, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    keys, counters = KeyChecker(store), ServerMetrics()

    def require_key(request: Request) -> None:  # sync: FastAPI runs it in a thread, so scrypt never holds the event loop
        """Every route but the public ones: the key is checked before the body is parsed, so no key is a 401 whatever the body."""
        if request.url.path not in PUBLIC_PATHS:
            request.state.key_name = authorise(request)

    docs = {} if api_docs else {"openapi_url": None, "docs_url": None, "redoc_url": None}  # (docs routes, when on, need no key)
    app = FastAPI(title="tuneloop", description="OpenAI-compatible API over fine-tuned adapters", dependencies=[Depends(require_key)], **docs)
    app.add_middleware(RequestSizeLimit, max_bytes=limits.max_request_bytes)
    encoder = engine.encoder
    context = getattr(getattr(engine.model, "config", None), "max_position_embeddings", None)
    log_texts = request_log_texts(log_prompts)
    app.state.engine, app.state.store, app.state.base_model = engine, store, base_model

    @app.exception_handler(ApiError)
    async def api_error(_request, err: ApiError):
        return JSONResponse(error_body(err), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request, err: RequestValidationError):
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return await api_error(_request, ApiError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param))

    @app.exception_handler(HTTPException)
    async def http_error(_request, err: HTTPException):  # unknown routes, wrong methods, a body over the limit
        code = "request_too_large" if err.status_code == 413 else None
        return await api_error(_request, ApiError(err.status_code, str(err.detail), code=code))

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

    def prompt_limit(max_tokens: int) -> int:
        """The most prompt tokens a request may send: the server's limit, and the model's context less the answer."""
        return limits.max_prompt_tokens if context is None else min(limits.max_prompt_tokens, context - max_tokens)

    def too_long(tokens: int | None, limit: int, param: str) -> ApiError:
        counted = f"has {tokens} tokens" if tokens is not None else "is far longer than that"
        message = f"the prompt {counted}; this server accepts at most {limit} with this max_tokens (--max-prompt-tokens, the model's context of {context})"
        return ApiError(400, message, param=param, code="context_length_exceeded")

    def prompt_ids(job: "Job", max_tokens: int) -> list[int]:
        """The prompt's token ids, refused (400) when too long; an obviously long prompt is refused before it is tokenised."""
        limit = prompt_limit(max_tokens)
        param = "messages" if job.kind == "chat" else "prompt"
        text = "".join(m["content"] for m in job.messages) if job.kind == "chat" else job.prompt
        if encoder.surely_longer_than(text, limit):
            raise too_long(None, limit, param)
        ids = encoder.encode_chat(job.messages) if job.kind == "chat" else encoder.encode(job.prompt)
        if not ids:
            raise ApiError(400, "the prompt is empty: give at least one token to continue from", param=param)
        if len(ids) > limit:
            raise too_long(len(ids), limit, param)
        return ids

    def refuse_not_implemented(body: GenerationRequest) -> None:
        name = body.asked_not_implemented()
        if name is not None:
            message = f"{name}={getattr(body, name)!r} is not supported by this server; leave it out"
            raise ApiError(400, message, param=name, code="unsupported_parameter")

    def checked_max_tokens(requested: int | None, default: int) -> int:
        if requested is None:
            return min(default, limits.max_tokens)
        value = requested
        if value > limits.max_tokens:
            raise ApiError(400, f"max_tokens {value} is above this server's limit of {limits.max_tokens}", param="max_tokens")
        return value

    @app.get("/healthz")
    async def healthz():  # public: says the server is up and nothing about what it holds
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(counters.render(engine), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": listed_models(store.connection())}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str):
        for entry in listed_models(store.connection()):
            if entry["id"] == model_id:
                return entry
        raise ApiError(404, f"no model {model_id!r} here (GET /v1/models lists them)", param="model", code="model_not_found")

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request):
        key_name = request.state.key_name
        refuse_not_implemented(body)
        target = await run_in_threadpool(served, body.model)  # a first use loads the adapter: not on the event loop
        messages = [m.model_dump() for m in body.messages]
        prompted = messages
        if target.system_prompt and messages[0]["role"] != "system":  # as the version was trained
            prompted = [{"role": "system", "content": target.system_prompt}, *messages]
        # The log keeps what the client sent, so answers of different versions to it compare as one prompt.
        job = Job(body.model, target, json.dumps(messages, ensure_ascii=False), "", key_name, "chat", messages=prompted)
        return await answer(job, checked_max_tokens(body.max_completion_tokens or body.max_tokens, 256), body)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        key_name = request.state.key_name
        refuse_not_implemented(body)
        target = await run_in_threadpool(served, body.model)  # a first use loads the adapter: not on the event loop
        job = Job(body.model, target, body.prompt, body.prompt, key_name, "text")
        return await answer(job, checked_max_tokens(body.max_tokens, 16), body)

    async def answer(job: "Job", max_tokens: int, body: GenerationRequest):
        loop, pieces = asyncio.get_running_loop(), asyncio.Queue()
        ids = await loop.run_in_executor(None, prompt_ids, job, max_tokens)  # tokenising never holds the event loop
        generation = Generation(
            job.prompt, job.target.adapter, max_tokens, body.temperature, body.top_p,
            on_text=lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece), prompt_ids=ids, stop=body.stop_strings(),
            on_end=lambda: loop.call_soon_threadsafe(pieces.put_nowait, None),  # after every piece: the same queue, in order
        )  # fmt: skip
        job.started = time.perf_counter()
        engine.submit(generation)
        if body.stream:
            with_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(stream_events(job, generation, pieces, with_usage), media_type="text/event-stream")
        while await pieces.get() is not None:  # (the text is read from the generation)
            pass
        await run_in_threadpool(finish, job, generation)  # scrubbing and the store's write: off the event loop
        return job.response(generation)

    async def stream_events(job: "Job", generation, pieces: asyncio.Queue, with_usage: bool):
        try:
            while (piece := await pieces.get()) is not None:  # None: the request ended, every piece came before it
                yield sse(job.chunk(piece, None))
            try:
                await run_in_threadpool(finish, job, generation)
            except ApiError as err:  # the 200 is already sent: the error is the stream's last event
                yield sse(error_body(err))
                return
            yield sse(job.chunk("", generation.finish_reason))
            if with_usage:
                yield sse(job.usage_chunk(generation))
            yield "data: [DONE]\n\n"
        finally:
            if not generation.finished.is_set():  # the client hung up: its row leaves the batch at the next step
                generation.abandoned = True

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
    async def feedback(body: FeedbackRequest):
        try:
            feedback_id = await run_in_threadpool(lambda: record_feedback(store.connection(), body))  # a write may wait for a lock
        except NotFoundError as err:
            raise ApiError(404, str(err), param="request_id") from None
        except TuneloopError as err:
            raise ApiError(400, str(err)) from None
        return {"id": feedback_id, "object": "feedback", "kind": body.kind}

    mount_web_page(app)
    return app


def error_body(err: ApiError) -> dict:
    """OpenAI's error shape: the body of an error response, and the last event of a failed stream."""
    return {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}}


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
    messages: list[dict] = field(default_factory=list)  # a chat's conversation as prompted (system prompt included)
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
