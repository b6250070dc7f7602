"""Pure ASGI middleware: the request's trace context and the request body size limit."""

from __future__ import annotations

import os
import random
import re
from typing import Any

from ..trace_hook import TRACE_CONTEXT
from .errors import TRACE_SCOPE_KEY, HTTPError, dumps

__all__ = ["BodyLimit", "BodyTooLarge", "TraceContext"]
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_RNG = random.Random(os.urandom(16))  # trace ids need uniqueness, not secrecy


class TraceContext:
    """Give each request a trace: the caller's (a W3C ``traceparent`` header) or a new one.

    It is in :data:`vivace.trace_hook.TRACE_CONTEXT` while the request is served, so the
    request's log lines, its error bodies (``error.trace_id``) and the runs it starts carry
    it; the response says it in ``x-vivace-trace-id``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = span_id = None
        for name, value in scope.get("headers", ()):
            if name == b"traceparent":
                m = _TRACEPARENT.fullmatch(value.decode("latin-1").strip().lower())
                if m is not None and m[1].strip("0") and m[2].strip("0"):
                    trace_id, span_id = m[1], m[2]
                break
        if trace_id is None:
            trace_id = f"{_RNG.getrandbits(128) or 1:032x}"
        context = (trace_id, span_id, None)
        scope[TRACE_SCOPE_KEY] = context
        header = (b"x-vivace-trace-id", trace_id.encode())

        async def send_with_trace(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = TRACE_CONTEXT.set(context)
        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            TRACE_CONTEXT.reset(token)


class BodyTooLarge(HTTPError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"the request body is larger than {limit} bytes")


class BodyLimit:
    """Answer 413 when ``Content-Length`` or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _send_error(send, HTTPError(400, "invalid_header", "bad Content-Length"))
                    return
                if length > limit:
                    await _send_error(send, BodyTooLarge(limit))
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_error(send, exc)


async def _send_error(send: Any, err: HTTPError) -> None:
    body = dumps(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
