"""Spans below the run: one per model attempt (retries and fallbacks), MCP calls, memory
operations, your own spans, nested as they happened."""

from __future__ import annotations

import sys

import pytest

from vivace import Agent, tool
from vivace.memory import HashEmbedder, Memory, SemanticRecall, WorkingMemory
from vivace.models import get_model
from vivace.observability import InMemoryExporter, Tracing, configure, current_span
from vivace.observability.tracer import Tracer
from vivace.testing import ScriptedModel, call
from vivace.testing.fake_providers import (
    FakeAnthropic,
    FakeOpenAIChat,
    HTTPFault,
    ToolCall,
    Turn,
)


def _traced() -> tuple[InMemoryExporter, Tracer]:
    spans = InMemoryExporter()
    return spans, configure(spans, delay=0.01)


def _tree(spans: list, root) -> list[tuple[int, str]]:
    """``(depth, name)`` in start order under ``root``."""
    children: dict[str | None, list] = {}
    for s in spans:
        children.setdefault(s.parent_span_id, []).append(s)
    out: list[tuple[int, str]] = []

    def walk(span, depth: int) -> None:
        out.append((depth, span.name))
        for c in sorted(children.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(c, depth + 1)

    walk(root, 0)
    return out


def _streamed(agent: Agent, text: str):
    import asyncio

    async def go():
        stream = agent.astream(text)
        async for _ in stream:
            pass
        return stream.result

    return asyncio.run(go())


def _run_span(spans: list, agent: str):
    [run] = [s for s in spans if s.name == f"invoke_agent {agent}"]
    return run


@pytest.mark.parametrize("stream", [False, True])
def test_a_retried_model_request_is_one_span_per_attempt(stream: bool) -> None:
    exported, tracer = _traced()
    with FakeOpenAIChat() as srv:
        srv.script(
            HTTPFault(429, "slow down", retry_after=0), HTTPFault(503, "overloaded"), Turn("Hi!")
        )
        model = get_model("openai/gpt-4o", base_url=srv.base_url, api_key="sk-test", max_retries=3)
        agent = Agent(model=model, name="retrying")
        result = _streamed(agent, "hello") if stream else agent.run("hello")
    assert result.output == "Hi!"
    tracer.force_flush()
    spans = exported.spans
    run = _run_span(spans, "retrying")
    attempts = sorted((s for s in spans if s.name == "chat gpt-4o"), key=lambda s: s.start_ns)
    assert [a.status for a in attempts] == [2, 2, 1]  # error, error, ok
    assert all(a.parent_span_id == run.span_id and a.kind == 3 for a in attempts)
    first, second, third = attempts
    assert first.attributes["error.type"] == "model_rate_limited"
    assert first.attributes["http.response.status_code"] == 429
    assert "slow down" in first.status_message
    assert second.attributes["http.response.status_code"] == 503
    assert [a.attributes.get("vivace.model.attempt") for a in attempts] == [None, 2, 3]
    assert first.end_ns <= second.start_ns and second.end_ns <= third.start_ns
    # tokens and cost only on the attempt that answered; cost is the catalog's Usage.cost
    assert "gen_ai.usage.input_tokens" not in first.attributes
    assert third.attributes["gen_ai.usage.input_tokens"] == result.usage.input_tokens
    assert result.usage.cost is not None and result.usage.cost > 0
    assert third.attributes["vivace.cost_usd"] == pytest.approx(result.usage.cost)
    assert run.attributes["vivace.cost_usd"] == pytest.approx(result.usage.cost)
    assert run.status == 1


def test_a_fallback_is_a_span_per_model_with_where_it_came_from() -> None:
    exported, tracer = _traced()
    with FakeOpenAIChat() as a, FakeAnthropic() as b:
        a.script(HTTPFault(500, "boom"))
        b.script(Turn("From Claude"))
        primary = get_model("openai/gpt-4o", base_url=a.base_url, api_key="sk-a", max_retries=0)
        backup = get_model(
            "anthropic/claude-sonnet-4-5", base_url=b.base_url, api_key="sk-b", max_retries=0
        )
        result = Agent(model=[primary, backup], name="falls").run("hi")
    assert result.output == "From Claude"
    tracer.force_flush()
    spans = exported.spans
    run = _run_span(spans, "falls")
    assert run.attributes["gen_ai.request.model"] == "gpt-4o"
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.start_ns)
    assert [c.name for c in chats] == ["chat gpt-4o", "chat claude-sonnet-4-5"]
    failed, answered = chats
    assert failed.status == 2 and failed.attributes["http.response.status_code"] == 500
    assert failed.attributes["gen_ai.provider.name"] == "openai"
    assert answered.status == 1
    assert answered.attributes["gen_ai.provider.name"] == "anthropic"
    assert answered.attributes["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert answered.attributes["vivace.model.fallback_from"] == "openai/gpt-4o"
    assert answered.attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens
    assert {c.parent_span_id for c in chats} == {run.span_id}


def test_all_attempts_failing_fails_the_run_with_every_attempt_visible() -> None:
    exported, tracer = _traced()
    with FakeOpenAIChat() as srv:
        srv.script(HTTPFault(500, "one"), HTTPFault(500, "two"))
        model = get_model("openai/gpt-4o", base_url=srv.base_url, api_key="sk-t", max_retries=1)
        result = Agent(model=model, name="doomed").run("hi")
    assert result.status == "failed"
    tracer.force_flush()
    run = _run_span(exported.spans, "doomed")
    attempts = [s for s in exported.spans if s.name == "chat gpt-4o"]
    assert len(attempts) == 2 and all(a.status == 2 for a in attempts)
    assert run.status == 2


def test_a_run_model_override_is_what_the_spans_name() -> None:
    exported, tracer = _traced()
    agent = Agent(model="test/echo", name="switch")
    result = agent.run("hi", model=ScriptedModel(["scripted answer"]))
    assert result.output == "scripted answer"
    tracer.force_flush()
    run = _run_span(exported.spans, "switch")
    assert run.attributes["gen_ai.request.model"] == "scripted"
    assert [s.name for s in exported.spans if s.name.startswith("chat")] == ["chat scripted"]


def test_mcp_list_and_call_nest_under_the_run_and_the_tool_call() -> None:
    pytest.importorskip("mcp_server_time")
    from vivace.mcp import MCPToolset

    exported, tracer = _traced()
    clock = MCPToolset(sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"])
    agent = Agent(
        model=ScriptedModel([call("get_current_time", {"timezone": "UTC"}), "It is late."]),
        tools=[clock],
        name="clock",
    )
    import asyncio

    async def go():
        async with clock:
            return await agent.arun("What time is it?")

    result = asyncio.run(go())
    assert result.status == "completed"
    tracer.force_flush()
    spans = exported.spans
    run = _run_span(spans, "clock")
    assert _tree(spans, run) == [
        (0, "invoke_agent clock"),
        (1, "tools/list"),
        (1, "chat scripted"),
        (1, "execute_tool get_current_time"),
        (2, "tools/call get_current_time"),
        (1, "chat scripted"),
    ]
    [mcp_call] = [s for s in spans if s.name == "tools/call get_current_time"]
    assert mcp_call.kind == 3
    assert mcp_call.attributes["mcp.method.name"] == "tools/call"
    assert mcp_call.attributes["gen_ai.tool.name"] == "get_current_time"
    assert mcp_call.attributes["network.transport"] == "pipe"
    assert {s.trace_id for s in spans} == {result.trace_id}


def test_memory_operations_nest_under_the_run() -> None:
    exported, tracer = _traced()
    from vivace.storage import shared_storage

    memory = Memory(
        shared_storage("memory://"),
        working=WorkingMemory(template="# Notes"),
        recall=SemanticRecall(HashEmbedder(), top_k=2),
    )
    agent = Agent(
        model=ScriptedModel(["first", "second"]), memory=memory, name="remembers", history_runs=0
    )
    agent.run("I like green tea", session_id="mem-1")
    second = agent.run("What do I like?", session_id="mem-1")
    tracer.force_flush()
    spans = [s for s in exported.spans if s.trace_id == second.trace_id]
    run = _run_span(spans, "remembers")
    assert _tree(spans, run) == [
        (0, "invoke_agent remembers"),
        (1, "storage begin_run"),
        (1, "memory load"),
        (1, "memory recall"),
        (1, "chat scripted"),
        (1, "storage finish_run"),
        (1, "memory index"),
    ]
    by_name = {s.name: s for s in spans}
    assert by_name["memory load"].attributes["vivace.memory.operation"] == "load"
    assert by_name["memory load"].attributes["vivace.memory.chars"] > 0
    assert by_name["memory recall"].attributes["vivace.memory.recalled"] >= 1
    assert by_name["memory index"].attributes["gen_ai.conversation.id"] == "mem-1"


def test_spans_of_a_subagent_and_your_own_spans_nest_where_they_ran() -> None:
    exported, tracer = _traced()

    @tool
    def lookup(city: str) -> str:
        """Look a city up."""
        with tracer.span("db.query", attributes={"db.system": "sqlite"}):
            assert current_span() is not None and current_span().name == "db.query"
            return f"{city}: 12 C"

    helper = Agent(
        model=ScriptedModel([call("lookup", {"city": "Oslo"}), "Cold."]),
        tools=[lookup],
        name="helper",
    )

    @tool
    async def ask_helper(question: str) -> str:
        """Ask the helper."""
        return (await helper.arun(question)).output

    lead = Agent(
        model=ScriptedModel([call("ask_helper", {"question": "Oslo?"}), "Cold there."]),
        tools=[ask_helper],
        name="lead",
    )
    with tracer.span("request") as outer:
        result = lead.run("Weather in Oslo?")
    tracer.force_flush()
    spans = exported.spans
    assert result.trace_id != outer.trace_id  # a run starts its own trace unless told
    spans = [s for s in spans if s.trace_id == result.trace_id]
    assert _tree(spans, _run_span(spans, "lead")) == [
        (0, "invoke_agent lead"),
        (1, "chat scripted"),
        (1, "execute_tool ask_helper"),
        (2, "invoke_agent helper"),
        (3, "chat scripted"),
        (3, "execute_tool lookup"),
        (4, "db.query"),
        (3, "chat scripted"),
        (1, "chat scripted"),
    ]


def test_a_run_inside_your_span_joins_its_trace_when_given_its_trace_id() -> None:
    exported, tracer = _traced()
    agent = Agent(model=ScriptedModel(["ok"]), name="inner")
    with tracer.span("workflow step") as step:
        result = agent.run("go", trace_id=step.trace_id)
    tracer.force_flush()
    run = _run_span(exported.spans, "inner")
    assert result.trace_id == step.trace_id
    assert run.parent_span_id == step.span_id


def test_an_agent_with_its_own_tracing_gets_attempt_spans_too() -> None:
    spans = InMemoryExporter()
    tracer = Tracer([spans], delay=0.01)
    with FakeOpenAIChat() as srv:
        srv.script(HTTPFault(503, "busy", retry_after=0), Turn(tool_calls=[ToolCall("t", {})]))
        srv.script(Turn("done"))

        @tool
        def t() -> str:
            """A tool."""
            return "x"

        model = get_model("openai/gpt-4o", base_url=srv.base_url, api_key="sk", max_retries=1)
        Agent(model=model, tools=[t], name="own", capabilities=[Tracing(tracer)]).run("go")
    tracer.force_flush()
    names = [s.name for s in sorted(spans.spans, key=lambda s: s.start_ns)]
    assert names.count("chat gpt-4o") == 3  # failed attempt, retry, second request
    tracer.shutdown()


async def test_storage_load_and_append_are_spans_of_the_run(storage) -> None:
    """On every backend: the run's ``begin_run`` (load) and ``finish_run`` (append) are
    children of its span, which starts with the load; a resumed run's claim is one too."""
    from vivace import Approve

    exported, tracer = _traced()

    @tool(requires_approval=True)
    def wipe(path: str) -> str:
        """Wipe a path."""
        return f"wiped {path}"

    agent = Agent(
        model=ScriptedModel([call("wipe", {"path": "/tmp"}), "wiped."]),
        tools=[wipe],
        storage=storage,
        name="stored",
    )
    paused = await agent.arun("wipe /tmp", session_id="st-1")
    assert paused.status == "paused"
    call_id = paused.paused.pending[0].id
    done = await agent.aresume(paused.run_id, {call_id: Approve()})
    assert done.status == "completed"
    tracer.force_flush()
    spans = [s for s in exported.spans if s.trace_id == paused.trace_id]
    first = next(s for s in spans if s.span_id == paused.span_id)
    assert _tree(spans, first) == [
        (0, "invoke_agent stored"),
        (1, "storage begin_run"),
        (1, "chat scripted"),
        (1, "storage finish_run"),
        (1, "storage resume_run"),
        (1, "invoke_agent stored"),  # the resumed segment (the claim above loaded it)
        (2, "execute_tool wipe"),
        (2, "chat scripted"),
        (2, "storage finish_run"),
    ]
    begin = next(s for s in spans if s.name == "storage begin_run")
    assert begin.start_ns == first.start_ns  # the run's span starts with its load
    system = {"memory": "memory", "sqlite": "sqlite", "postgres": "postgresql"}
    assert begin.attributes["db.system.name"] in system.values()
    assert begin.attributes["db.operation.name"] == "begin_run"
    assert begin.attributes["gen_ai.conversation.id"] == "st-1"
    assert begin.attributes["vivace.storage.history_messages"] == 0


async def test_workflow_runs_and_steps_are_spans_with_agent_runs_inside() -> None:
    """A workflow run is ``invoke_workflow``, each step attempt ``workflow_step``; an agent
    step's run nests under its step; a suspended run ends its span (not an error) and its
    resumption is a second run span in the same trace."""
    from pydantic import BaseModel

    from vivace.workflows import StepContext, Workflow, step

    class Ok(BaseModel):
        ok: bool

    flaky_calls = []

    @step(retries=1, backoff=0)
    def fetch(order: str) -> str:
        flaky_calls.append(order)
        if len(flaky_calls) == 1:
            raise RuntimeError("flaky")
        return f"order {order}"

    @step(resume=Ok)
    async def approve(text: str, ctx: StepContext) -> str:
        decision = await ctx.suspend({"text": text})
        return text if decision.ok else "rejected"

    writer = Agent(model=ScriptedModel(["A fine summary."]), name="writer")
    wf = Workflow("orders").then(fetch).then(approve).then(writer)
    exported, tracer = _traced()
    run = await wf.arun("o-1")
    assert run.status == "suspended"
    done = await wf.aresume(run.run_id, step="approve", data={"ok": True})
    assert done.status == "completed" and done.output == "A fine summary."
    tracer.force_flush()
    spans = [s for s in exported.spans if s.trace_id == run.trace_id]
    first = next(s for s in spans if s.span_id == run.span_id)
    assert _tree(spans, first) == [
        (0, "invoke_workflow orders"),
        (1, "workflow_step fetch"),
        (1, "workflow_step fetch"),
        (1, "workflow_step approve"),
        (1, "invoke_workflow orders"),  # the resumed segment
        (2, "workflow_step approve"),
        (2, "workflow_step writer"),
        (3, "invoke_agent writer"),
        (4, "chat scripted"),
    ]
    by = {}
    for s in sorted(spans, key=lambda s: s.start_ns):
        by.setdefault(s.name, []).append(s)
    failed, retried = by["workflow_step fetch"]
    assert failed.status == 2 and "flaky" in failed.status_message
    assert (retried.status, retried.attributes["vivace.workflow.attempt"]) == (1, 2)
    parked = by["workflow_step approve"][0]
    assert parked.status == 1 and parked.attributes["vivace.workflow.step_status"] == "suspended"
    assert first.attributes["vivace.run.status"] == "suspended"
    assert first.attributes["gen_ai.workflow.name"] == "orders"
    assert first.attributes["vivace.span_type"] == "workflow_run"
    resumed = by["invoke_workflow orders"][1]
    assert resumed.attributes["vivace.run.status"] == "completed"
    agent_run = by["invoke_agent writer"][0]
    assert agent_run.attributes["vivace.parent_run_id"] == run.run_id


async def test_a_failed_workflow_run_is_a_failed_span() -> None:
    from vivace.workflows import Workflow, step

    @step
    def boom(x: int) -> int:
        raise ValueError("no")

    exported, tracer = _traced()
    result = await Workflow("fails").then(boom).arun(1)
    assert result.status == "failed"
    tracer.force_flush()
    run = next(s for s in exported.spans if s.name == "invoke_workflow fails")
    assert run.status == 2 and run.attributes["vivace.run.status"] == "failed"
    assert "no" in run.status_message
