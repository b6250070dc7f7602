"""A small app served over MCP by the tests (``vivace mcp mcp_app:app``), with deterministic
models so a separate process answers the same way every time."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vivace import Agent
from vivace.testing import FunctionModel, call


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return {"city": city, "sky": "sunny", "celsius": 21}


def _forecaster(messages: Any, request: Any) -> Any:
    last = messages[-1]
    if last.role == "user":
        return call("get_weather", {"city": last.text})
    report = last.parts[0].content
    return f"It is {report['sky']} in {report['city']}, {report['celsius']} C."


forecaster = Agent(
    model=FunctionModel(_forecaster),
    name="forecaster",
    description="Answers questions about the weather in a city.",
    tools=[get_weather],
)
app = SimpleNamespace(agents=[forecaster], tools=[get_weather], workflows=[])
