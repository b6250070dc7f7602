"""Trace context on every event, RunContext and RunResult; nested runs join their parent."""

from __future__ import annotations

import re
from typing import Any

from vivace import Agent, Approve, RunContext, tool
from vivace.agent.events import event_from_dict
from vivace.testing import ScriptedModel, call

HEX32 = re.compile("[0-9a-f]{32}")
HEX16 = re.compile("[0-9a-f]{16}")


async def test_every_event_and_the_result_carry_the_runs_trace_context() -> None:
    seen: list[RunContext[Any]] = []

    def look(ctx: RunContext[Any]) -> str:
        seen.append(ctx)
        return "ok"

    stream = Agent(model=ScriptedModel([call("look", {}), "done"]), tools=[look]).astream("x")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None
    assert HEX32.fullmatch(result.trace_id or "") and HEX16.fullmatch(result.span_id or "")
    assert result.parent_run_id is None
    for e in events:
        d = e.to_dict()
        assert (d["trace_id"], d["span_id"], d["parent_run_id"]) == (
            result.trace_id,
            result.span_id,
            None,
        )
        assert event_from_dict(d).trace == e.trace  # JSON round trip keeps it
    assert (seen[0].trace_id, seen[0].span_id) == (result.trace_id, result.span_id)
    assert result.to_dict()["trace_id"] == result.trace_id


async def test_a_caller_can_put_a_run_in_its_own_trace() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    result = await Agent(model=ScriptedModel(["a"])).arun(
        "x", run_id="my run", trace_id=trace, parent_run_id="wf-step-1"
    )
    assert result.run_id == "my run"
    assert (result.trace_id, result.parent_run_id) == (trace, "wf-step-1")
    assert HEX16.fullmatch(result.span_id or "")


async def test_runs_in_one_process_get_distinct_traces() -> None:
    agent = Agent(model=ScriptedModel(["a", "b"]))
    one, two = await agent.arun("x"), await agent.arun("y")
    assert one.trace_id != two.trace_id and one.span_id != two.span_id


async def test_a_resumed_run_keeps_its_trace() -> None:
    @tool(requires_approval=True)
    def act() -> str:
        return "done"

    agent = Agent(model=ScriptedModel([call("act", {}, id="c1"), "finished"]), tools=[act])
    paused = await agent.arun("x", trace_id="0" * 31 + "1", parent_run_id="p")
    assert paused.status == "paused" and paused.paused is not None
    stream = agent.aresume_stream(paused.paused.to_dict(), {"c1": Approve()})
    events = [e async for e in stream]
    assert stream.result is not None and stream.result.output == "finished"
    assert {(e.trace_id, e.span_id, e.parent_run_id) for e in events} == {
        (paused.trace_id, paused.span_id, "p")
    }


async def test_stored_runs_carry_the_trace_context_and_children_are_found_by_parent() -> None:
    from vivace.storage import InMemoryStorage

    storage = InMemoryStorage()
    child = Agent(ScriptedModel(["child answer"]), name="child", storage=storage)

    async def delegate(ctx: RunContext[Any], task: str) -> str:
        """Delegate."""
        return (await child.arun(task, session_id="kids")).output

    parent = Agent(
        ScriptedModel([call("delegate", {"task": "t"}), "done"]),
        tools=[delegate],
        storage=storage,
    )
    result = await parent.arun("x", session_id="main")
    record = await storage.sessions.get_run(result.run_id)
    assert record is not None
    assert (record.trace_id, record.span_id, record.parent_run_id) == (
        result.trace_id,
        result.span_id,
        None,
    )
    [kid] = await storage.sessions.list_runs(parent_run_id=result.run_id)
    assert kid.trace_id == result.trace_id and kid.session_id == "kids"
