"""Toolsets: dynamic per-run tools, and approvals, retries, timeouts and events working the
same for a toolset's tools as for plain functions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vivace import Agent, RunContext, Toolkit, tool
from vivace.errors import ToolDefinitionError
from vivace.models import ToolDefinition
from vivace.testing import ScriptedModel, call
from vivace.tools import DynamicToolset, SchemaTool, Toolset

ECHO = ToolDefinition(
    "echo",
    "Echo the text.",
    {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
)


class Remote(Toolset):
    """A toolset of JSON-Schema tools with per-tool options."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.calls: list[dict[str, Any]] = []
        self.fail_times = 0
        self.delay = 0.0

    async def list_tools(self, ctx: RunContext[Any]) -> list[Any]:
        return [self.to_tool(ECHO, **self.options)]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: RunContext[Any]) -> Any:
        self.calls.append(arguments)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("remote is down")
        return {"echo": arguments["text"], "run": ctx.run_id}


async def test_a_toolset_tool_pauses_for_approval_and_resumes() -> None:
    remote = Remote(requires_approval=True)
    model = ScriptedModel([call("echo", {"text": "hi"}, id="c1"), "done"])
    agent = Agent(model=model, tools=[remote])
    paused = await agent.arun("say hi")
    assert paused.status == "paused" and [c.name for c in paused.pending] == ["echo"]
    assert remote.calls == []
    resumed = await agent.aresume(paused.paused.to_dict(), {"c1": True})  # type: ignore[union-attr]
    assert resumed.output == "done"
    assert remote.calls == [{"text": "hi"}]


async def test_a_toolset_tool_failing_is_retried_within_its_budget_and_events_are_emitted() -> None:
    remote = Remote(max_retries=1)
    remote.fail_times = 1
    model = ScriptedModel([call("echo", {"text": "a"}), call("echo", {"text": "b"}), "ok"])
    stream = Agent(model=model, tools=[remote]).astream("x")
    events = [e async for e in stream]
    completed = [e for e in events if e.type == "tool_call_completed"]
    assert [e.is_error for e in completed] == [True, False]  # type: ignore[attr-defined]
    assert "RuntimeError: remote is down" in completed[0].result  # type: ignore[attr-defined]
    assert stream.result is not None and stream.result.output == "ok"


async def test_a_toolset_tool_over_budget_fails_the_run() -> None:
    remote = Remote(max_retries=0)
    remote.fail_times = 5
    model = ScriptedModel([call("echo", {"text": "a"}), "never"])
    result = await Agent(model=model, tools=[remote]).arun("x")
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "tool_retries_exceeded"


async def test_a_toolset_tool_timeout_becomes_a_tool_error() -> None:
    remote = Remote(timeout=0.05)
    remote.delay = 1.0
    model = ScriptedModel([call("echo", {"text": "a"}), "gave up"])
    result = await Agent(model=model, tools=[remote]).arun("x")
    assert result.output == "gave up"
    tool_result = model.requests[1].messages[-1].tool_results[0]
    assert tool_result.is_error and "timed out after 0.05s" in str(tool_result.content)


async def test_schema_tool_arguments_are_checked_before_the_call() -> None:
    remote = Remote()
    model = ScriptedModel(
        [call("echo", {"txt": "a"}), call("echo", {"text": 3}), call("echo", {"text": "ok"}), "y"]
    )
    result = await Agent(model=model, tools=[remote], tool_retries=3).arun("x")
    errors = [str(r.messages[-1].tool_results[0].content) for r in model.requests[1:3]]
    assert "missing text" in errors[0] and "unknown txt" in errors[0]
    assert "text: expected string" in errors[1]
    assert remote.calls == [{"text": "ok"}]
    assert result.output == "y"


async def test_dynamic_toolset_picks_tools_from_session_state() -> None:
    def read(doc: str) -> str:
        return f"read {doc}"

    def delete(doc: str) -> str:
        return f"deleted {doc}"

    tools = DynamicToolset(lambda ctx: [read, delete] if ctx.session_state.get("admin") else [read])
    for admin, expected in ((False, ["read"]), (True, ["read", "delete"])):
        model = ScriptedModel(["ok"])
        await Agent(model=model, tools=[tools]).arun("x", session_state={"admin": admin})
        assert [t.name for t in model.requests[0].tools] == expected


async def test_filtered_and_prefixed_toolsets() -> None:
    def a() -> str:
        return "a"

    def b() -> str:
        return "b"

    kit = Toolkit([a, b], instructions="Use the tools.")
    only_a = kit.filtered(lambda ctx, t: t.name == "a")
    model = ScriptedModel(["ok"])
    await Agent(model=model, tools=[only_a]).arun("x")
    assert [t.name for t in model.requests[0].tools] == ["a"]
    assert model.requests[0].instructions == "Use the tools."

    model = ScriptedModel([call("kit_b", {}), "ok"])
    result = await Agent(model=model, tools=[kit.prefixed("kit"), a]).arun("x")
    assert sorted(t.name for t in model.requests[0].tools) == ["a", "kit_a", "kit_b"]
    assert model.requests[1].messages[-1].tool_results[0].content == "b"
    assert result.output == "ok"


async def test_two_different_tools_with_one_name_are_a_clear_error() -> None:
    @tool(name="search")
    def one(q: str) -> str:
        return q

    @tool(name="search")
    def two(q: str) -> str:
        return q

    result = await Agent(model=ScriptedModel(["x"]), tools=[one, two]).arun("x")
    assert result.status == "failed"
    assert isinstance(result.error, ToolDefinitionError)
    assert "two different tools are named 'search'" in result.error.message
    # the same tool given twice is fine
    assert (await Agent(model=ScriptedModel(["y"]), tools=[one, one]).arun("x")).output == "y"


async def test_a_toolkit_is_a_static_toolset() -> None:
    def f() -> str:
        return "f"

    kit = Toolkit([f])
    assert isinstance(kit, Toolset)
    assert [t.name for t in kit.static_tools()] == ["f"]
    assert kit.static_tools() is kit.static_tools()  # built once


def test_schema_tool_without_handler_options_has_the_definition() -> None:
    async def handler(arguments: dict[str, Any], ctx: Any) -> Any:
        return arguments

    t = SchemaTool(ECHO, handler)
    assert t.definition() is ECHO and t.name == "echo" and not t.requires_approval
    with pytest.raises(Exception, match="not JSON"):
        t.validate("{nope")
