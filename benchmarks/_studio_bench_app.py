"""The app bench_studio.py serves: an agent whose model streams 20 text deltas, 50 ms apart,
each carrying the server's clock when it was produced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from vivace import Agent
from vivace.messages import TextPart
from vivace.models import Model, ModelResponse
from vivace.models.base import TextDelta
from vivace.server import VivaceApp
from vivace.studio import Studio


class ClockModel(Model):
    provider = "bench"
    model_name = "clock"

    async def request(self, request: Any) -> ModelResponse:
        return ModelResponse([TextPart("ok")])

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        text = []
        for _ in range(20):
            await asyncio.sleep(0.05)
            piece = f"<{time.time() * 1000:.3f}>"
            text.append(piece)
            yield TextDelta(piece)
        yield ModelResponse([TextPart("".join(text))])


app = VivaceApp(
    [Agent(model=ClockModel(), name="clock")], storage="memory://", extensions=[Studio()]
)
