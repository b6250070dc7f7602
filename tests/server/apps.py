"""Agents and apps used by the server tests (importable by server subprocesses too)."""

from __future__ import annotations

import threading

from vivace import Agent, tool
from vivace.server import VivaceApp
from vivace.testing import EchoModel, FunctionModel, call

GATE = threading.Event()  # the ``wait_gate`` tool blocks until a test sets it


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city name.
    """
    return f"sunny in {city}"


@tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file (needs approval).

    Args:
        path: The file to delete.
    """
    return f"deleted {path}"


def wait_gate() -> str:
    """Block until the test opens the gate."""
    if not GATE.wait(20):
        raise RuntimeError("gate never opened")
    return "gate open"


def _tool_then_answer(tool_name: str, args: dict[str, str]) -> FunctionModel:
    def fn(messages, request):  # type: ignore[no-untyped-def]
        last = messages[-1]
        if last.role == "tool":
            return f"done: {last.parts[0].content}"
        return call(tool_name, args)

    return FunctionModel(fn, model_name=f"{tool_name}-model")


def _provider_down(messages, request):  # type: ignore[no-untyped-def]
    from vivace.errors import ModelHTTPError

    raise ModelHTTPError("the provider is down", provider="test", status=503)


def _transcript(messages, request):  # type: ignore[no-untyped-def]
    """Answers with the whole conversation it was given (history included)."""
    return " | ".join(f"{m.role}:{m.text}" for m in messages if m.role in ("user", "assistant"))


def make_agents() -> list[Agent]:
    return [
        Agent(model=EchoModel(), name="echo", description="Repeats what you say."),
        Agent(
            model=_tool_then_answer("get_weather", {"city": "Paris"}),
            name="weather",
            tools=[get_weather],
        ),
        Agent(
            model=_tool_then_answer("delete_file", {"path": "/tmp/x"}),
            name="approver",
            tools=[delete_file],
        ),
        Agent(model=_tool_then_answer("wait_gate", {}), name="gated", tools=[wait_gate]),
        Agent(model=FunctionModel(_provider_down, model_name="down"), name="broken"),
        Agent(model=FunctionModel(_transcript, model_name="transcript"), name="transcript"),
    ]


app = VivaceApp(agents=make_agents())
