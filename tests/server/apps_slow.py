"""A slow streaming agent for cross-worker reconnect tests (importable by server subprocesses).

The ``slow`` agent streams ``before`` words, then waits until the file named in its input
(``gate:<path>``) exists, then streams ``after`` more words. Every response carries the
answering worker's pid in ``x-worker-pid``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from vivace import Agent
from vivace.models.base import ModelRequest, ModelResponse, StreamEvent, TextDelta
from vivace.server import VivaceApp
from vivace.testing import FunctionModel

BEFORE = 6
AFTER = 8


def _gate_path(request: ModelRequest) -> str | None:
    for m in reversed(request.messages):
        if m.role == "user" and m.text and m.text.startswith("gate:"):
            return m.text[len("gate:") :]
    return None


class GatedSlowModel(FunctionModel):
    """Streams words with small pauses and blocks mid-answer until a gate file exists."""

    def __init__(self) -> None:
        super().__init__(self._answer, native_output=False, model_name="slow")

    @staticmethod
    def _answer(messages: Any, request: ModelRequest) -> str:
        words = [f"w{i}" for i in range(BEFORE + AFTER)]
        return " ".join(words)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        response = await self._call(request)
        gate = _gate_path(request)
        for i in range(BEFORE + AFTER):
            if i == BEFORE and gate is not None:
                for _ in range(600):  # at most 60 s
                    if os.path.exists(gate):
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.01)
            yield TextDelta(f"w{i} " if i < BEFORE + AFTER - 1 else f"w{i}")
        yield response


class GatedModel(GatedSlowModel):
    """:class:`GatedSlowModel` whose non-streamed answer waits at the gate too (JSON runs)."""

    async def request(self, request: ModelRequest) -> ModelResponse:
        gate = _gate_path(request)
        for _ in range(600 if gate is not None else 0):  # at most 60 s
            if os.path.exists(gate):  # type: ignore[arg-type]
                break
            await asyncio.sleep(0.1)
        return await super().request(request)


inner = VivaceApp(agents=[Agent(model=GatedSlowModel(), name="slow")])


async def app(scope: Any, receive: Any, send: Any) -> None:
    """``inner`` with an ``x-worker-pid`` response header."""
    if scope["type"] != "http":
        await inner(scope, receive, send)
        return
    pid = str(os.getpid()).encode()

    async def send_pid(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"x-worker-pid", pid)]}
        await send(message)

    await inner(scope, receive, send_pid)
