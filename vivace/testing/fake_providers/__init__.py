"""Protocol-faithful fake provider servers for tests: real HTTP on 127.0.0.1, scripted.

.. code-block:: python

    from vivace import Agent
    from vivace.models import get_model
    from vivace.testing.fake_providers import FakeOpenAIChat, ToolCall, Turn

    with FakeOpenAIChat() as srv:
        srv.script(Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]), Turn(text="Sunny"))
        agent = Agent(model=get_model("openai/gpt-4o", base_url=srv.base_url, api_key="sk-test"),
                      tools=[get_weather])
        assert agent.run("Weather in Paris?").output == "Sunny"
        assert srv.requests[1].json["messages"][-1]["role"] == "tool"

Faults: :class:`HTTPFault` (429 + ``retry_after``, 5xx, ``html=True`` pages) and the stream
faults of :class:`Turn` (``drop_after``, ``malformed_at``, ``error_at``, ``delay``,
``finish_reason="something_new"``). New protocols subclass :class:`FakeProviderServer`.
"""

from __future__ import annotations

from typing import Any

from .base import (
    FakeProviderServer,
    HTTPFault,
    RecordedRequest,
    Reply,
    RequestSummary,
    ToolCall,
    Turn,
)

__all__ = [
    "FakeAnthropic",
    "FakeBedrock",
    "FakeGemini",
    "FakeOllama",
    "FakeOpenAIChat",
    "FakeOpenAIResponses",
    "FakeProviderServer",
    "HTTPFault",
    "RecordedRequest",
    "Reply",
    "RequestSummary",
    "ToolCall",
    "Turn",
    "fake_embedding",
]

_LAZY = {
    "FakeOpenAIChat": ".openai_chat",
    "fake_embedding": ".openai_chat",
    "FakeOpenAIResponses": ".openai_responses",
    "FakeAnthropic": ".anthropic",
    "FakeGemini": ".gemini",
    "FakeOllama": ".ollama",
    "FakeBedrock": ".bedrock",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
