"""A request-size limit enforced before the body is read: 413, and the body is never buffered.

A declared ``Content-Length`` above the limit is answered at once, without reading a byte of the
body; a body without one (chunked) is counted as it arrives and refused as soon as it passes the
limit. So one huge request cannot hold the event loop (and ``/healthz``) while it is read.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException


def too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than this server's limit of {max_bytes} bytes (tuneloop serve --max-request-bytes)"


class RequestTooLarge(HTTPException):
    """The body passed the limit while it was being read (an HTTPException: FastAPI lets it through to the app's handler)."""

    def __init__(self, max_bytes: int):
        super().__init__(413, too_large_message(max_bytes))


class RequestSizeLimit:
    """ASGI middleware: HTTP requests whose body is larger than ``max_bytes`` get 413 in OpenAI's error shape."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self.refuse(send)
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise RequestTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted_receive, send)

    async def refuse(self, send) -> None:
        message = too_large_message(self.max_bytes)
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "request_too_large"}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
