"""Teams in the four modes, with global step/depth limits, usage sums and nested events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vivace import Agent, Approve, tool
from vivace.agent.events import NestedEvent, RunEvent
from vivace.errors import UserError
from vivace.teams import Team
from vivace.testing import FunctionModel, ScriptedModel, Stream, call


def _member(name: str, answer: str, **kw: Any) -> Agent:
    return Agent(model=ScriptedModel([answer] * 10), name=name, description=f"{name} agent", **kw)


def _child_events(events: list[RunEvent], path: tuple[str, ...]) -> list[RunEvent]:
    return [e.event for e in events if isinstance(e, NestedEvent) and tuple(e.path) == path]  # type: ignore[misc]


async def test_route_returns_the_chosen_members_answer() -> None:
    leader = ScriptedModel([call("billing", {"task": "refund order 7"})])
    team = Team(
        members=[_member("billing", "Refund issued."), _member("tech", "Reboot it.")],
        mode="route",
        model=leader,
    )
    stream = team.astream("I want a refund for order 7")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.status == "completed"
    assert result.output == "Refund issued."
    assert len(leader.requests) == 1  # the leader did not answer again
    assert "Members:\n- billing: billing agent\n- tech: tech agent" in (
        leader.requests[0].instructions or ""
    )
    assert {d.name for d in leader.requests[0].tools} == {"billing", "tech"}
    assert _child_events(events, ("billing",))[-1].type == "run_completed"
    assert not _child_events(events, ("tech",))
    assert result.usage.requests == 2


async def test_coordinate_delegates_to_two_members_and_answers() -> None:
    leader = ScriptedModel(
        [
            [call("research", {"task": "facts"}), call("write", {"task": "draft"})],
            "Final: facts + draft",
        ]
    )
    team = Team(
        members=[
            Agent(model=ScriptedModel([Stream("solar ", "is ", "cheap")]), name="research"),
            _member("write", "a draft"),
        ],
        model=leader,
    )
    stream = team.astream("note on solar")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.output == "Final: facts + draft"
    tool_results = [p.content for p in leader.requests[1].messages[-1].parts]
    assert tool_results == ["solar is cheap", "a draft"]
    research = _child_events(events, ("research",))
    write = _child_events(events, ("write",))
    for child in (research, write):  # each member's events complete and in order, once
        assert [e.seq for e in child] == list(range(len(child)))
        assert child[0].type == "run_started" and child[-1].type == "run_completed"
        assert all(e.parent_run_id == result.run_id for e in child)
    assert "".join(e.text for e in research if e.type == "text_delta") == "solar is cheap"  # type: ignore[attr-defined]
    assert [e.seq for e in events] == list(range(len(events)))
    assert result.usage.requests == 4  # 2 leader + 1 + 1 members
    assert result.usage.input_tokens > sum(
        r.usage.get("input_tokens", 0)
        for r in [e for e in events if e.type == "model_request_completed"]  # type: ignore[attr-defined]
    )


async def test_broadcast_runs_members_in_parallel_then_the_leader_synthesizes() -> None:
    arrived: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}

    def member(name: str, other: str) -> Agent:
        async def answer(messages: Any, request: Any) -> str:
            arrived[name].set()
            await asyncio.wait_for(arrived[other].wait(), 5)  # only passes if both run at once
            return f"{name} says hi"

        return Agent(model=FunctionModel(answer), name=name)

    def lead(messages: Any, request: Any) -> Any:
        last = messages[-1]
        if last.role == "user":
            return call("broadcast", {"task": "greet"})
        return f"combined: {last.parts[0].content}"

    team = Team(
        members=[member("a", "b"), member("b", "a")], mode="broadcast", model=FunctionModel(lead)
    )
    stream = team.astream("greet")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.status == "completed", result.error
    assert result.output == "combined: {'a': 'a says hi', 'b': 'b says hi'}"
    assert _child_events(events, ("a",))[-1].type == "run_completed"
    assert _child_events(events, ("b",))[-1].type == "run_completed"
    assert result.usage.requests == 4


async def test_tasks_mode_keeps_a_task_list_with_statuses_in_session_state() -> None:
    from vivace.storage import InMemoryStorage

    storage = InMemoryStorage()
    leader = ScriptedModel(
        [
            [
                call("add_task", {"title": "find prices", "assignee": "research"}),
                call(
                    "add_task", {"title": "write summary", "assignee": "write", "depends_on": ["1"]}
                ),
            ],
            call("run_task", {"task_id": "1"}),
            call("run_task", {"task_id": "2"}),
            call("list_tasks", {}),
            "Summary done.",
        ]
    )
    writer_model = ScriptedModel(["summary written"])
    team = Team(
        members=[_member("research", "prices: 3"), Agent(model=writer_model, name="write")],
        mode="tasks",
        model=leader,
        storage=storage,
    )
    result = await team.arun("summarize prices", session_id="s1")
    assert result.status == "completed" and result.output == "Summary done."
    tasks = result.session_state["team_tasks"]  # type: ignore[index]
    assert [(t["id"], t["status"], t["result"]) for t in tasks] == [
        ("1", "completed", "prices: 3"),
        ("2", "completed", "summary written"),
    ]
    # the dependent task got the first task's result
    assert "prices: 3" in writer_model.requests[0].messages[-1].text
    stored = await storage.sessions.get_session("s1")
    assert stored is not None and stored.state["team_tasks"][1]["status"] == "completed"
    assert result.usage.requests == 7


async def test_a_delegation_loop_ends_at_the_team_step_limit() -> None:
    def lead(messages: Any, request: Any) -> Any:
        return call("echo", {"task": "again"})  # never answers

    member = Agent(model=ScriptedModel(["ok"] * 100), name="echo")
    team = Team(members=[member], model=FunctionModel(lead), max_steps=7)
    result = await team.arun("loop forever")
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "max_steps_exceeded"
    assert "max_steps=7" in result.error.message and "members together" in result.error.message
    assert result.usage.requests == 7  # leader and members together, not 7 each


async def test_a_member_that_loops_is_bounded_by_the_team_budget() -> None:
    @tool
    def spin() -> str:
        return "more"

    member = Agent(model=FunctionModel(lambda m, r: call("spin", {})), tools=[spin], name="spinner")
    lead = ScriptedModel([call("spinner", {"task": "go"}), "gave up"] + ["x"] * 5)
    team = Team(members=[member], model=lead, max_steps=6)
    result = await team.arun("go")
    assert result.status == "failed" and result.error.code == "max_steps_exceeded"  # type: ignore[union-attr]
    assert result.usage.requests == 6


async def test_depth_limit_is_global_to_the_team_run() -> None:
    leaf = _member("leaf", "leaf answer")
    inner = Team(
        members=[leaf],
        name="inner",
        model=ScriptedModel([call("leaf", {"task": "t"}), "inner done"] * 2),
        max_depth=5,
    )
    outer = Team(
        members=[inner],
        name="outer",
        model=ScriptedModel([call("inner", {"task": "t"}), "outer done"]),
        max_depth=1,
    )
    result = await outer.arun("go")
    assert result.output == "outer done"
    # the inner team (depth 1) could not delegate to its leaf (depth 2)
    assert leaf.model.position == 0  # type: ignore[union-attr]
    inner_msgs = inner.model.requests[1].messages  # type: ignore[union-attr]
    assert "delegation depth limit (1) reached" in inner_msgs[-1].parts[0].content


async def test_a_member_pausing_in_a_team_surfaces_and_resumes() -> None:
    ran: list[int] = []

    @tool(requires_approval=True)
    def refund(amount: int) -> str:
        ran.append(amount)
        return "refunded"

    billing = Agent(
        model=ScriptedModel([call("refund", {"amount": 30}, id="r1"), "Refunded 30."]),
        tools=[refund],
        name="billing",
    )
    team = Team(
        members=[billing, _member("tech", "n/a")],
        model=ScriptedModel([call("billing", {"task": "refund 30"}, id="L1"), "Done: refunded"]),
    )
    paused = await team.arun("refund me")
    assert paused.status == "paused"
    assert [(c.id, c.name, c.arguments_dict()) for c in paused.pending] == [
        ("L1/r1", "refund", {"amount": 30})
    ]
    stream = team.aresume_stream(paused.paused, {"L1/r1": Approve()})  # type: ignore[arg-type]
    events = [e async for e in stream]
    assert stream.result is not None and stream.result.output == "Done: refunded"
    assert ran == [30]
    assert _child_events(events, ("billing",))[-1].type == "run_completed"


async def test_broadcast_with_a_pausing_member_resumes_only_that_member() -> None:
    @tool(requires_approval=True)
    def publish() -> str:
        return "published"

    quiet = ScriptedModel(["quiet answer"])
    team = Team(
        members=[
            Agent(model=quiet, name="quiet"),
            Agent(
                model=ScriptedModel([call("publish", {}, id="p1"), "loud answer"]),
                tools=[publish],
                name="loud",
            ),
        ],
        mode="broadcast",
        model=ScriptedModel([call("broadcast", {"task": "go"}, id="B"), "both answered"]),
    )
    paused = await team.arun("go")
    assert [c.id for c in paused.pending] == ["B/loud/p1"]
    done = await team.aresume(paused.paused, {"B/loud/p1": True})  # type: ignore[arg-type]
    assert done.output == "both answered"
    assert len(quiet.requests) == 1  # the member that had answered did not run again
    final_tool_result = team.model.requests[-1].messages[-1].parts[0].content  # type: ignore[union-attr]
    assert final_tool_result == {"quiet": "quiet answer", "loud": "loud answer"}


def test_bad_mode_and_members_are_typed_errors() -> None:
    with pytest.raises(UserError, match="unknown team mode"):
        Team(members=[], mode="swarm")
    team = Team(members=[object()], model=ScriptedModel(["x"]))
    result = team.run("x")
    assert result.status == "failed" and "no as_tool" in result.error.message  # type: ignore[union-attr]


def test_teams_run_synchronously_too() -> None:
    team = Team(
        members=[_member("a", "A")], mode="route", model=ScriptedModel([call("a", {"task": "t"})])
    )
    assert team.run("x").output == "A"
