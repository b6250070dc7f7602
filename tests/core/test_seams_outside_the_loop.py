"""Three features written outside the run loop on its seams, each in under 50 lines: an
MCP-like toolset, a knowledge-like capability, and a subagent used as a tool. Nothing in
vivace/agent/loop.py knows about any of them."""

from __future__ import annotations

from typing import Any

from vivace import Agent, RunContext
from vivace.agent import Capability
from vivace.models import ToolDefinition
from vivace.testing import FunctionModel, ScriptedModel, call
from vivace.tools import Toolset

# -- 1. an MCP-like toolset: tools listed per run from a "server", called through it -----------


class FakeServer:
    """Stands in for a remote tool server: a catalog of tools and a call entry point."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.listed = 0

    def list(self, user: str | None) -> list[dict[str, Any]]:
        self.listed += 1
        tools = [{"name": "time_now", "schema": {"type": "object", "properties": {}}}]
        if user == "admin":
            tools.append(
                {
                    "name": "reboot",
                    "schema": {
                        "type": "object",
                        "properties": {"host": {"type": "string"}},
                        "required": ["host"],
                    },
                }
            )
        return tools

    async def call(self, name: str, args: dict[str, Any]) -> str:
        self.calls.append((name, args))
        return "12:00" if name == "time_now" else f"rebooted {args['host']}"


class ServerToolset(Toolset):
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    async def list_tools(self, ctx: RunContext[Any]) -> list[ToolDefinition]:
        return [
            ToolDefinition(t["name"], f"remote {t['name']}", t["schema"])
            for t in self.server.list(ctx.user_id)
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: RunContext[Any]) -> Any:
        return await self.server.call(name, arguments)


async def test_an_mcp_like_toolset_lists_tools_per_run_and_calls_through_the_server() -> None:
    server = FakeServer()
    model = ScriptedModel([call("reboot", {"host": "db1"}), "done"])
    agent = Agent(model=model, tools=[ServerToolset(server)])
    result = await agent.arun("reboot db1", user_id="admin")
    assert result.output == "done"
    assert server.calls == [("reboot", {"host": "db1"})]
    assert {t.name for t in model.requests[0].tools} == {"time_now", "reboot"}
    # another user's run lists other tools: the list is per run
    guest = ScriptedModel([call("reboot", {"host": "db1"}), call("time_now", {}), "ok"])
    out = await Agent(model=guest, tools=[ServerToolset(server)]).arun("x", user_id="guest")
    assert [t.name for t in guest.requests[0].tools] == ["time_now"]
    assert "unknown tool 'reboot'" in str(guest.requests[1].messages[-1].tool_results[0].content)
    assert out.output == "ok" and server.listed == 2


# -- 2. a knowledge-like capability: a search tool, retrieved context, citations ------------

DOCS = {"vivace": "Vivace is an agent runtime.", "tea": "Green tea has caffeine."}


class Knowledge(Capability):
    def __init__(self) -> None:
        self.cited: list[list[str]] = []

    def tools(self) -> list[Any]:
        def search_docs(query: str) -> str:
            """Search the knowledge base."""
            return "\n".join(v for k, v in DOCS.items() if k in query.lower()) or "nothing"

        return [search_docs]

    async def instructions(self, ctx: RunContext[Any], input: Any) -> str | None:
        hits = [k for k in DOCS if input is not None and k in input.text.lower()]
        ctx.metadata["citations"] = hits
        return "Context:\n" + "\n".join(DOCS[k] for k in hits) if hits else None

    def after_run(self, ctx: RunContext[Any], result: Any) -> None:
        self.cited.append(ctx.metadata["citations"])


async def test_a_knowledge_like_capability_adds_context_tools_and_citations() -> None:
    kb = Knowledge()
    model = ScriptedModel([call("search_docs", {"query": "tea"}), "It has caffeine."])
    agent = Agent(model=model, instructions="Answer briefly.", capabilities=[kb])
    result = await agent.arun("What is Vivace? And tea?")
    assert result.output == "It has caffeine."
    first = model.requests[0]
    assert first.instructions is not None
    assert first.instructions.startswith("Answer briefly.")
    assert "Vivace is an agent runtime." in first.instructions
    assert [t.name for t in first.tools] == ["search_docs"]
    assert "caffeine" in str(model.requests[1].messages[-1].tool_results[0].content)
    assert kb.cited == [["vivace", "tea"]]


# -- 3. a subagent used as a tool: a real child run in the parent's trace ---------------------


def agent_tool(child: Agent[Any, Any], name: str) -> Any:
    async def delegate(ctx: RunContext[Any], task: str) -> str:
        run = await child.arun(task, session_id=ctx.session_id)
        return str(run.output)

    delegate.__name__ = name
    delegate.__doc__ = f"Ask the {name} agent."
    return delegate


async def test_a_subagent_as_a_tool_runs_as_a_child_in_the_parents_trace() -> None:
    seen: list[RunContext[Any]] = []

    def child_answers(messages: Any, request: Any) -> str:
        return "42"

    child = Agent(model=FunctionModel(child_answers), name="math", hooks=[_Spy(seen)])
    parent = Agent(
        model=ScriptedModel([call("math", {"task": "6*7"}), "The answer is 42."]),
        tools=[agent_tool(child, "math")],
        name="boss",
    )
    stream = parent.astream("what is 6*7?")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.output == "The answer is 42."
    [child_ctx] = seen
    assert child_ctx.parent_run_id == result.run_id
    assert child_ctx.trace_id == result.trace_id == events[0].trace_id
    assert child_ctx.span_id != result.span_id
    assert {e.trace_id for e in events} == {result.trace_id}


class _Spy(Capability):
    def __init__(self, seen: list[RunContext[Any]]) -> None:
        self.seen = seen

    def before_run(self, ctx: RunContext[Any], input: Any) -> None:
        self.seen.append(ctx)


def test_an_error_rebuilt_from_its_dict_is_its_own_class_again() -> None:
    from vivace.errors import InvalidIdentifier, VivaceError
    from vivace.workflows import StepInterrupted

    for err in (
        StepInterrupted("step 'pay' was running", step="pay"),
        InvalidIdentifier("run_id contains a control character", field="run_id"),
        VivaceError("plain"),
    ):
        back = VivaceError.from_dict(err.to_dict())
        assert type(back) is type(err) and back.to_dict() == err.to_dict()
    # a code no class here declares (another process's error): kept, not lost
    other = VivaceError.from_dict({"type": "Theirs", "code": "their_code", "message": "中文 😀"})
    assert type(other) is VivaceError and other.code == "their_code"
    assert other.to_dict()["message"] == "中文 😀"
