"""Streaming responses: server-sent events with keep-alive comments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .sse import KEEPALIVE, frame

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["KEEPALIVE_SECONDS", "run_event_frames", "sse_response", "with_keepalive"]

KEEPALIVE_SECONDS = 15.0


async def with_keepalive(
    frames: AsyncIterator[bytes], keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """``frames``, with a ``: keep-alive`` comment whenever nothing came for ``keepalive`` s."""
    it = frames.__aiter__()
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield KEEPALIVE
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield chunk
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


async def run_event_frames(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Run events as SSE frames: ``event`` is the type and ``id`` the ``seq``."""
    async for event in events:
        yield frame(event, event.get("type"), event.get("seq"))


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str]) -> Response:
    from starlette.responses import StreamingResponse

    return StreamingResponse(
        with_keepalive(body),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no", **headers},
    )
