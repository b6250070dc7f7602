"""The Vivace side of ``bench_server.py``: a one-tool agent behind :class:`VivaceApp`.

Served with ``vivace serve _server_vivace_app:app --workers 1 --storage sqlite:///...``
(run from ``benchmarks/``). The model string ``openai/gpt-4o-mini`` goes through the model
router; the bench points it at the fake server with ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
Storage comes from ``--storage`` (``VIVACE_STORAGE_URL``); auth is the default (no key set:
open to loopback clients only).
"""

from __future__ import annotations

import os
from typing import Any

from vivace import Agent
from vivace.server import VivaceApp

INSTRUCTIONS = "You are a weather assistant. Use the get_weather tool to answer."


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city.
    """
    return f"Sunny in {city}."


def _model() -> Any:
    """The model router's ``openai/gpt-4o-mini`` (the fake server), or with
    ``BENCH_MODEL_IN_PROCESS=1`` the same two answers from an in-process model (no HTTP)."""
    if not os.environ.get("BENCH_MODEL_IN_PROCESS"):
        return "openai/gpt-4o-mini"
    from vivace.testing import FunctionModel, call

    def script(messages: Any, request: Any) -> Any:
        if messages[-1].role == "tool":
            return "It is sunny in Paris."
        return call("get_weather", {"city": "Paris"})

    return FunctionModel(script)


agent = Agent(
    model=_model(),
    name="weather",
    instructions=INSTRUCTIONS,
    tools=[get_weather],
)
app = VivaceApp(agents=[agent])
