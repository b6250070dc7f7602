"""An agent as a tool: a real child run, its events through the parent's stream, approvals
surfacing at the top, limits and usage."""

from __future__ import annotations

from typing import Any

import pytest

from vivace import Agent, Approve, Reject, tool
from vivace.agent.events import NestedEvent, RunEvent, event_from_dict
from vivace.testing import ScriptedModel, Stream, call


def _check_gap_free(events: list[RunEvent]) -> None:
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))


def _nested_by_run(events: list[RunEvent]) -> dict[str, list[RunEvent]]:
    out: dict[str, list[RunEvent]] = {}
    for e in events:
        if isinstance(e, NestedEvent):
            assert e.event is not None
            out.setdefault(e.event.run_id, []).append(e.event)
    return out


async def test_child_run_streams_through_the_parent_tagged_once_each() -> None:
    writer = Agent(
        model=ScriptedModel([Stream("Roses ", "are ", "red.")]),
        name="writer",
        description="Writes.",
    )
    lead = Agent(
        model=ScriptedModel([call("writer", {"task": "a poem"}, id="c1"), "Here it is."]),
        tools=[writer.as_tool()],
        name="lead",
    )
    stream = lead.astream("poem please")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.output == "Here it is."
    _check_gap_free(events)  # the parent's own sequence has no gaps
    assert all(e.run_id == result.run_id for e in events)
    children = _nested_by_run(events)
    assert len(children) == 1
    ((child_id, child_events),) = children.items()
    # every child event exactly once, in order, from run_started to run_completed
    assert [e.seq for e in child_events] == list(range(len(child_events)))
    assert child_events[0].type == "run_started" and child_events[-1].type == "run_completed"
    deltas = [e.text for e in child_events if e.type == "text_delta"]  # type: ignore[attr-defined]
    assert "".join(deltas) == "Roses are red."
    nested = [e for e in events if isinstance(e, NestedEvent)]
    assert {tuple(e.path) for e in nested} == {("writer",)}
    assert {e.call_id for e in nested} == {"c1"}
    # trace nesting: same trace, the parent as parent_run_id
    for e in child_events:
        assert e.trace_id == result.trace_id and e.parent_run_id == result.run_id
        assert e.span_id != result.span_id
    # nested events come between the tool call's start and completion
    kinds = [e.type for e in events]
    start, done = kinds.index("tool_call_started"), kinds.index("tool_call_completed")
    assert all(start < i < done for i, e in enumerate(events) if isinstance(e, NestedEvent))
    completed = events[done]
    assert completed.result == "Roses are red." and not completed.is_error  # type: ignore[attr-defined]
    # JSON round trip of a nested event keeps the child's event
    d = nested[0].to_dict()
    back = event_from_dict(d)
    assert isinstance(back, NestedEvent) and back.event is not None
    assert back.event.to_dict() == nested[0].event.to_dict()  # type: ignore[union-attr]
    assert child_id != result.run_id


async def test_nested_paths_flatten_and_usage_sums_over_children() -> None:
    leaf = Agent(model=ScriptedModel(["leaf answer"]), name="leaf")
    mid = Agent(
        model=ScriptedModel([call("leaf", {"task": "go"}), "mid answer"]),
        tools=[leaf.as_tool()],
        name="mid",
    )
    top = Agent(
        model=ScriptedModel([call("mid", {"task": "go"}), "top answer"]),
        tools=[mid.as_tool()],
        name="top",
    )
    stream = top.astream("x")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.output == "top answer"
    paths = {tuple(e.path) for e in events if isinstance(e, NestedEvent)}
    assert paths == {("mid",), ("mid", "leaf")}
    # no nested-of-nested wrapping: the inner event is the leaf's own event
    leaf_events = [e.event for e in events if isinstance(e, NestedEvent) and len(e.path) == 2]
    assert all(not isinstance(e, NestedEvent) for e in leaf_events)
    assert leaf_events[-1].type == "run_completed"  # type: ignore[union-attr]
    # parent chain: leaf's parent is mid's run, mid's parent is top's run
    mid_run = next(e.event for e in events if isinstance(e, NestedEvent) and e.path == ["mid"])
    assert mid_run is not None and mid_run.parent_run_id == result.run_id
    assert leaf_events[0].parent_run_id == mid_run.run_id  # type: ignore[union-attr]
    assert leaf_events[0].trace_id == result.trace_id  # type: ignore[union-attr]
    # 2 requests of top + 2 of mid + 1 of leaf
    assert result.usage.requests == 5
    assert result.to_dict()["usage"]["requests"] == 5
    assert events[-1].usage["requests"] == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize("with_storage", [False, True])
async def test_a_member_pausing_for_approval_pauses_the_top_and_resumes(
    with_storage: bool,
) -> None:
    ran: list[str] = []

    @tool(requires_approval=True)
    def delete(path: str) -> str:
        ran.append(path)
        return f"deleted {path}"

    storage: Any = None
    if with_storage:
        from vivace.storage import InMemoryStorage

        storage = InMemoryStorage()
    worker = Agent(
        model=ScriptedModel([call("delete", {"path": "/tmp/x"}, id="w1"), "worker done"]),
        tools=[delete],
        name="worker",
    )
    boss = Agent(
        model=ScriptedModel([call("worker", {"task": "clean"}, id="b1"), "all clean"]),
        tools=[worker.as_tool()],
        name="boss",
        storage=storage,
    )
    stream = boss.astream("clean up", user_id="u1")
    first = [e async for e in stream]
    paused = stream.result
    assert paused is not None and paused.status == "paused"
    assert [(c.id, c.name) for c in paused.pending] == [("b1/w1", "delete")]
    assert first[-1].type == "run_paused"
    assert first[-1].pending[0]["id"] == "b1/w1"  # type: ignore[attr-defined]
    # the member's own pause streamed (nested) before the top's pause
    inner = [e.event for e in first if isinstance(e, NestedEvent)]
    assert inner[-1] is not None and inner[-1].type == "run_paused"
    assert ran == []
    run_ref: Any = paused.run_id if with_storage else paused.paused.to_dict()  # type: ignore[union-attr]
    resumed = boss.aresume_stream(run_ref, {"b1/w1": Approve()}, user_id="u1")
    second = [e async for e in resumed]
    result = resumed.result
    assert result is not None and result.status == "completed", result.error
    assert result.output == "all clean" and ran == ["/tmp/x"]
    # the whole stream (both halves) is one gap-free sequence of the top run
    _check_gap_free(first + second)
    child = [e.event for e in second if isinstance(e, NestedEvent)]
    assert child[0] is not None and child[0].type == "run_resumed"
    assert child[-1] is not None and child[-1].type == "run_completed"
    done = [e for e in second if e.type == "tool_call_completed"]
    assert done[-1].result == "worker done"  # type: ignore[attr-defined]
    assert result.usage.requests == 4
    if with_storage:
        record = await storage.sessions.get_run(result.run_id)
        assert record.status == "completed"


async def test_rejecting_a_members_call_reaches_the_member() -> None:
    @tool(requires_approval=True)
    def pay(amount: int) -> str:
        return "paid"

    seen: list[Any] = []

    def member_model(messages: Any, request: Any) -> Any:
        last = messages[-1]
        if last.role == "user":
            return call("pay", {"amount": 5}, id="p1")
        seen.append(last.parts[0].content)
        return "not paid"

    from vivace.testing import FunctionModel

    member = Agent(model=FunctionModel(member_model), tools=[pay], name="cashier")
    top = Agent(
        model=ScriptedModel([call("cashier", {"task": "pay 5"}, id="t1"), "ok"]),
        tools=[member.as_tool()],
    )
    paused = await top.arun("pay")
    assert paused.pending[0].id == "t1/p1"
    done = await top.aresume(paused.paused, {"t1/p1": Reject("too much")})  # type: ignore[arg-type]
    assert done.output == "ok"
    assert seen == ["rejected: too much"]


async def test_unknown_approval_ids_are_refused() -> None:
    from vivace.errors import ResumeError

    @tool(requires_approval=True)
    def act() -> str:
        return "x"

    member = Agent(model=ScriptedModel([call("act", {}, id="a1"), "m"]), tools=[act], name="m")
    top = Agent(
        model=ScriptedModel([call("m", {"task": "t"}, id="t1"), "ok"]), tools=[member.as_tool()]
    )
    paused = await top.arun("go")
    with pytest.raises(ResumeError):
        await top.aresume(paused.paused, {"a1": Approve()})  # type: ignore[arg-type]


async def test_recursive_delegation_stops_at_the_depth_limit() -> None:
    def model(messages: Any, request: Any) -> Any:
        last = messages[-1]
        if last.role == "user":
            return call("loop", {"task": "again"})
        return f"stopped: {last.parts[0].content}"

    from vivace.testing import FunctionModel

    agent = Agent(model=FunctionModel(model), name="loop")
    agent.tools = [agent.as_tool(max_depth=3)]
    result = await agent.arun("go")
    assert result.status == "completed"
    # depth 1, 2, 3 ran; the 4th delegation was refused with a clear error
    assert "delegation depth limit (3) reached" in result.output
    assert result.usage.requests == 8


async def test_a_failing_member_is_a_tool_error_the_model_sees() -> None:
    member = Agent(model=ScriptedModel([RuntimeError("boom")]), name="flaky")
    top = Agent(
        model=ScriptedModel([call("flaky", {"task": "t"}), "recovered"]),
        tools=[member.as_tool()],
    )
    stream = top.astream("x")
    events = [e async for e in stream]
    assert stream.result is not None and stream.result.output == "recovered"
    done = next(e for e in events if e.type == "tool_call_completed")
    assert done.is_error and "flaky failed" in done.result  # type: ignore[attr-defined]


async def test_bad_arguments_and_options_give_typed_errors() -> None:
    from vivace.errors import UserError
    from vivace.tools import ToolArgumentsError

    member = Agent(model=ScriptedModel(["x"]), name="m")
    t = member.as_tool()
    with pytest.raises(ToolArgumentsError):
        t.validate({"task": ""})
    with pytest.raises(ToolArgumentsError):
        t.validate('{"task": "a", "other": 1}')
    with pytest.raises(UserError):
        member.as_tool(session="shared")
    assert t.definition().parameters["required"] == ["task"]
    assert await t.call({"task": "hi"}, None) == "x"


async def test_same_session_option_stores_the_child_in_the_parents_session() -> None:
    from vivace.storage import InMemoryStorage

    storage = InMemoryStorage()
    member = Agent(model=ScriptedModel(["m1"]), name="member")
    own = Agent(
        model=ScriptedModel([call("member", {"task": "t"}), "done"]),
        tools=[member.as_tool()],
        storage=storage,
    )
    r1 = await own.arun("x", session_id="s-own")
    same_member = Agent(model=ScriptedModel(["m2"]), name="member")
    same = Agent(
        model=ScriptedModel([call("member", {"task": "t"}), "done"]),
        tools=[same_member.as_tool(session="same")],
        storage=storage,
    )
    r2 = await same.arun("x", session_id="s-same")
    own_runs = await storage.sessions.list_runs("s-own")
    same_runs = await storage.sessions.list_runs("s-same")
    assert [r.run_id for r in own_runs] == [r1.run_id]  # the child went to its own session
    assert len(same_runs) == 2 and r2.run_id in {r.run_id for r in same_runs}


async def test_a_prefixed_agent_tool_still_streams_its_events() -> None:
    """``Toolset.prefixed()`` renames a tool without losing that it streams events of its own
    (regression: the renamed agent tool ran, but its child's events never reached the caller)."""
    from vivace.tools import Toolset

    writer = Agent(model=ScriptedModel([Stream("Roses ", "are red.")]), name="writer")

    class Members(Toolset):
        def static_tools(self) -> list[Any]:
            return [writer.as_tool()]

    lead = Agent(
        model=ScriptedModel([call("team_writer", {"task": "a poem"}, id="c1"), "done"]),
        tools=[Members().prefixed("team")],
    )
    events = [e async for e in lead.astream("a poem please")]
    nested = [e for e in events if isinstance(e, NestedEvent)]
    assert nested[0].event.type == "run_started"
    assert "".join(e.event.text for e in nested if e.event.type == "text_delta") == "Roses are red."
    assert {e.call_id for e in nested} == {"c1"}
    done = [e for e in events if e.type == "tool_call_completed"]
    assert [(e.name, e.result) for e in done] == [("team_writer", "Roses are red.")]
