"""The sessions/runs behavioural suite: runs unchanged on in-memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vivace.errors import NotFound, StorageError, UserError
from vivace.messages import Message, ToolCallPart, ToolResultPart
from vivace.storage import (
    HistoryWindow,
    RunRecord,
    RunStateError,
    SessionOwnershipError,
    SessionRecord,
    StateNotSerializableError,
    StateTooLargeError,
)


def turn(i: int) -> list[Message]:
    """A user message, a tool call, its result and the answer."""
    return [
        Message.user(f"question {i}"),
        Message("assistant", [ToolCallPart(f"c{i}", "lookup", {"q": i})]),
        Message("tool", [ToolResultPart(f"c{i}", "lookup", {"answer": i})]),
        Message.assistant(f"answer {i}"),
    ]


async def add_run(
    st: Any,
    session_id: str,
    i: int,
    *,
    user_id: str | None = "u1",
    status: str = "completed",
    state: dict[str, Any] | None = None,
) -> RunRecord:
    rec = RunRecord(f"{session_id}-r{i}", session_id, agent_id="agent", user_id=user_id)
    await st.sessions.begin_run(rec)
    rec.messages = turn(i)
    rec.status = status  # type: ignore[assignment]
    rec.output = f"answer {i}"
    await st.sessions.finish_run(rec, state_changes=state)
    return rec


async def test_new_session_has_no_context(storage: Any) -> None:
    ctx = await storage.sessions.load_context("nope", user_id="u1", history=HistoryWindow())
    assert ctx.session is None
    assert ctx.history == [] and ctx.state == {}
    assert await storage.sessions.get_session("nope") is None
    assert await storage.sessions.get_run("nope") is None


async def test_run_round_trip_keeps_every_field(storage: Any) -> None:
    rec = RunRecord(
        "run-1",
        "s1",
        agent_id="agent",
        user_id="u1",
        input=Message.user("hi").to_dict(),
        metadata={"k": [1, 2]},
    )
    ctx = await storage.sessions.begin_run(rec, history=HistoryWindow(last_runs=5))
    assert ctx.history == [] and ctx.state == {}
    running = await storage.sessions.get_run("run-1")
    assert running is not None and running.status == "running"
    assert running.lease_expires_at is not None

    rec.messages = turn(1)
    rec.status = "completed"
    rec.output = {"answer": 1}
    rec.usage = {"input_tokens": 10, "output_tokens": 5, "requests": 2, "tool_calls": 1}
    await storage.sessions.finish_run(rec)
    got = await storage.sessions.get_run("run-1")
    assert got is not None
    assert got.status == "completed"
    assert got.session_id == "s1" and got.agent_id == "agent" and got.user_id == "u1"
    assert got.input == Message.user("hi").to_dict()
    assert [m.to_dict() for m in got.messages] == [m.to_dict() for m in turn(1)]
    assert got.output == {"answer": 1}
    assert got.usage == {"input_tokens": 10, "output_tokens": 5, "requests": 2, "tool_calls": 1}
    assert got.metadata == {"k": [1, 2]}
    assert got.error is None and got.paused is None and got.lease_expires_at is None
    assert got.created_at <= got.updated_at
    session = await storage.sessions.get_session("s1")
    assert session is not None and session.user_id == "u1" and session.agent_id == "agent"


async def test_history_windows(storage: Any) -> None:
    for i in range(5):
        await add_run(storage, "s", i)
    await add_run(storage, "s", 99, status="failed")  # failed runs stay out of history

    ctx = await storage.sessions.load_context("s", user_id="u1", history=HistoryWindow())
    assert [m.text for m in ctx.history if m.role == "user"] == [f"question {i}" for i in range(5)]

    ctx = await storage.sessions.load_context("s", user_id="u1", history=HistoryWindow(last_runs=2))
    assert [m.to_dict() for m in ctx.history] == [m.to_dict() for m in turn(3) + turn(4)]
    assert ctx.history_run_ids == ["s-r3", "s-r4"]

    # 6 messages would start at a tool result: the window starts at the next user message
    ctx = await storage.sessions.load_context(
        "s", user_id="u1", history=HistoryWindow(last_messages=6)
    )
    assert [m.to_dict() for m in ctx.history] == [m.to_dict() for m in turn(4)]
    assert ctx.history_run_ids == ["s-r4"]
    ctx = await storage.sessions.load_context(
        "s", user_id="u1", history=HistoryWindow(last_messages=8)
    )
    assert len(ctx.history) == 8 and ctx.history[0].text == "question 3"
    assert ctx.history_run_ids == ["s-r3", "s-r4"]

    big = await storage.sessions.load_context(
        "s", user_id="u1", history=HistoryWindow(max_tokens=10_000)
    )
    small = await storage.sessions.load_context(
        "s", user_id="u1", history=HistoryWindow(max_tokens=150)
    )
    assert len(big.history) == 20
    assert 0 < len(small.history) < 20 and small.history[0].role == "user"
    assert small.history[-1].text == "answer 4"

    ctx = await storage.sessions.load_context("s", user_id="u1", history=None)
    assert ctx.history == []
    ctx = await storage.sessions.load_context(
        "s", user_id="u1", history=HistoryWindow(statuses=("failed",))
    )
    assert [m.text for m in ctx.history if m.role == "user"] == ["question 99"]


async def test_begin_run_sees_history_without_its_own_run(storage: Any) -> None:
    await add_run(storage, "s", 1)
    rec = RunRecord("next", "s", user_id="u1")
    ctx = await storage.sessions.begin_run(rec, history=HistoryWindow(last_runs=10))
    assert [m.text for m in ctx.history if m.role == "user"] == ["question 1"]
    runs = await storage.sessions.list_runs("s")
    assert [r.run_id for r in runs] == ["s-r1", "next"]
    assert runs[1].status == "running"


async def test_state_changes_merge_by_key(storage: Any) -> None:
    await add_run(storage, "s", 1, state={"a": 1, "b": {"x": 1}})
    # two runs of the same session overlap: each changes its own keys
    r1 = RunRecord("p1", "s", user_id="u1")
    r2 = RunRecord("p2", "s", user_id="u1")
    c1 = await storage.sessions.begin_run(r1)
    c2 = await storage.sessions.begin_run(r2)
    c1.state["from_1"] = True
    c1.state["b"]["x"] = 2
    c2.state["from_2"] = True
    del c2.state["a"]
    for rec, ctx in ((r1, c1), (r2, c2)):
        changes, deletes = ctx.state_changes()
        rec.status = "completed"
        await storage.sessions.finish_run(rec, state_changes=changes, state_deletes=deletes)
    session = await storage.sessions.get_session("s")
    assert session.state == {"b": {"x": 2}, "from_1": True, "from_2": True}
    ctx = await storage.sessions.load_context("s", user_id="u1")
    assert ctx.state == session.state
    assert ctx.state_changes() == ({}, [])


async def test_finish_run_without_start_creates_session_and_run(storage: Any) -> None:
    rec = RunRecord("solo", "fresh", user_id=None, status="completed", messages=turn(1))
    state = await storage.sessions.finish_run(rec, state_changes={"n": 1})
    assert state == {"n": 1}
    # retried finish (e.g. after a timeout): still one run
    await storage.sessions.finish_run(rec, state_changes={"n": 1})
    runs = await storage.sessions.list_runs("fresh")
    assert [r.run_id for r in runs] == ["solo"] and runs[0].status == "completed"
    session = await storage.sessions.get_session("fresh")
    assert session is not None and session.user_id is None and session.state == {"n": 1}


async def test_a_runs_end_writes_the_session_only_when_its_state_changes(storage: Any) -> None:
    # a session's updated_at is when its last run started (or its state last changed)
    rec = RunRecord("r1", "s", agent_id="agent", user_id="u1")
    await storage.sessions.begin_run(rec)
    started = (await storage.sessions.get_session("s")).updated_at
    await asyncio.sleep(0.02)
    rec.messages, rec.status = turn(1), "completed"
    assert await storage.sessions.finish_run(rec) == {}
    session = await storage.sessions.get_session("s")
    assert session.updated_at == started and session.state == {}
    run = await storage.sessions.get_run("r1")
    assert run.status == "completed" and len(run.messages) == 4 and run.updated_at > started
    # a state change writes the session
    rec2 = RunRecord("r2", "s", agent_id="agent", user_id="u1")
    await storage.sessions.begin_run(rec2)
    second = (await storage.sessions.get_session("s")).updated_at
    assert second > started
    await asyncio.sleep(0.02)
    rec2.status = "completed"
    assert await storage.sessions.finish_run(rec2, state_changes={"n": 1}) == {"n": 1}
    session = await storage.sessions.get_session("s")
    assert session.updated_at > second and session.state == {"n": 1}


async def test_a_runs_end_writes_a_changed_parent(storage: Any) -> None:
    rec = RunRecord("child", "s", agent_id="agent", user_id="u1")
    await storage.sessions.begin_run(rec)
    rec.parent_run_id, rec.status = "parent", "completed"
    await storage.sessions.finish_run(rec)
    assert (await storage.sessions.get_run("child")).parent_run_id == "parent"
    assert [r.run_id for r in await storage.sessions.list_runs(parent_run_id="parent")] == ["child"]
    rec.parent_run_id = None  # and back
    await storage.sessions.finish_run(rec)
    assert (await storage.sessions.get_run("child")).parent_run_id is None
    assert await storage.sessions.list_runs(parent_run_id="parent") == []


async def test_a_session_deleted_during_a_run_comes_back_with_it(storage: Any) -> None:
    rec = RunRecord("r1", "s", agent_id="agent", user_id="u1")
    await storage.sessions.begin_run(rec)
    assert await storage.sessions.delete_session("s", user_id="u1")
    assert await storage.sessions.get_run("r1") is None
    rec.messages, rec.status = turn(1), "completed"
    assert await storage.sessions.finish_run(rec) == {}
    session = await storage.sessions.get_session("s")
    assert session is not None and session.user_id == "u1"
    runs = await storage.sessions.list_runs("s")
    assert [(r.run_id, r.status, len(r.messages)) for r in runs] == [("r1", "completed", 4)]


async def test_another_users_session_is_never_returned_or_changed(storage: Any) -> None:
    await add_run(storage, "s", 1, user_id="alice", state={"secret": "a"})
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.load_context("s", user_id="bob", history=HistoryWindow())
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.load_context("s", user_id=None)
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.begin_run(RunRecord("evil", "s", user_id="bob"))
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.start_run(RunRecord("evil", "s", user_id="bob"))
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.finish_run(
            RunRecord("evil", "s", user_id="bob", status="completed"), state_changes={"secret": "b"}
        )
    # read paths: another user's session reads like a missing one
    assert await storage.sessions.get_session("s", user_id="bob") is None
    assert await storage.sessions.get_session("nope", user_id="bob") is None
    assert (await storage.sessions.get_session("s", user_id="alice")).state == {"secret": "a"}
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.rename_session("s", "mine", user_id="bob")
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.delete_session("s", user_id="bob")
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.create_session(SessionRecord("s", user_id="bob"))
    assert await storage.sessions.get_run("evil") is None
    session = await storage.sessions.get_session("s")
    assert session.state == {"secret": "a"} and session.name is None
    assert len(await storage.sessions.list_runs("s")) == 1


async def test_bad_state_is_rejected_and_nothing_changes(storage_factory: Any) -> None:
    st = storage_factory(max_state_bytes=200)
    await add_run(st, "s", 1, state={"keep": 1})
    rec = RunRecord("r2", "s", user_id="u1")
    await st.sessions.begin_run(rec)
    rec.status = "completed"
    rec.messages = turn(2)
    with pytest.raises(StateTooLargeError) as info:
        await st.sessions.finish_run(rec, state_changes={"big": "x" * 500})
    assert isinstance(info.value, UserError)
    with pytest.raises(StateNotSerializableError):
        await st.sessions.finish_run(rec, state_changes={"obj": object()})
    with pytest.raises(StateNotSerializableError):
        await st.sessions.finish_run(rec, state_changes={"nan": float("nan")})
    with pytest.raises(StateNotSerializableError):
        await st.sessions.update_state("s", changes={"s": {1, 2}})
    rec.output = object()
    with pytest.raises(StateNotSerializableError):
        await st.sessions.finish_run(rec)
    session = await st.sessions.get_session("s")
    assert session.state == {"keep": 1}
    run = await st.sessions.get_run("r2")
    assert run.status == "running" and run.messages == []
    with pytest.raises(StateTooLargeError):
        await st.sessions.create_session(SessionRecord("s2", state={"big": "y" * 500}))
    assert await st.sessions.get_session("s2") is None


async def test_expired_lease_reads_as_incomplete(storage: Any) -> None:
    await add_run(storage, "s", 1)
    rec = RunRecord("crashed", "s", user_id="u1")
    await storage.sessions.begin_run(rec, lease=0.0)
    await asyncio.sleep(0.01)
    got = await storage.sessions.get_run("crashed")
    assert got.status == "incomplete"
    assert [r.status for r in await storage.sessions.list_runs("s")] == ["completed", "incomplete"]
    assert [r.run_id for r in await storage.sessions.list_runs("s", statuses=["incomplete"])] == [
        "crashed"
    ]
    assert await storage.sessions.list_runs("s", statuses=["running"]) == []
    ctx = await storage.sessions.load_context("s", user_id="u1", history=HistoryWindow())
    assert len(ctx.history) == 4

    alive = RunRecord("alive", "s", user_id="u1")
    await storage.sessions.start_run(alive, lease=0.0)
    assert await storage.sessions.heartbeat("alive", lease=600)
    assert (await storage.sessions.get_run("alive")).status == "running"
    alive.status = "completed"
    await storage.sessions.finish_run(alive)
    assert not await storage.sessions.heartbeat("alive")
    assert (await storage.sessions.get_run("alive")).status == "completed"


async def test_paused_run_is_resumed_exactly_once(storage: Any) -> None:
    rec = RunRecord("p", "s", user_id="u1")
    await storage.sessions.begin_run(rec)
    rec.status = "paused"
    rec.messages = turn(1)[:2]
    rec.paused = {"pending": [{"call_id": "c1", "tool": "lookup"}]}
    await storage.sessions.finish_run(rec, state_changes={"step": 1})

    with pytest.raises(SessionOwnershipError):
        await storage.sessions.resume_run("p", user_id="mallory")
    claimed = await storage.sessions.resume_run("p", user_id="u1")
    assert claimed.status == "running"
    assert claimed.paused == {"pending": [{"call_id": "c1", "tool": "lookup"}]}
    assert [m.to_dict() for m in claimed.messages] == [m.to_dict() for m in turn(1)[:2]]
    with pytest.raises(RunStateError):
        await storage.sessions.resume_run("p", user_id="u1")
    with pytest.raises(NotFound):
        await storage.sessions.resume_run("missing", user_id="u1")

    claimed.messages = turn(1)
    claimed.status = "completed"
    claimed.paused = None
    await storage.sessions.finish_run(claimed, state_changes={"step": 2})
    runs = await storage.sessions.list_runs("s")
    assert len(runs) == 1 and runs[0].status == "completed" and len(runs[0].messages) == 4
    assert (await storage.sessions.get_session("s")).state == {"step": 2}


async def test_a_run_id_cannot_move_to_another_session(storage: Any) -> None:
    await add_run(storage, "s", 1)
    with pytest.raises(RunStateError):
        await storage.sessions.start_run(RunRecord("s-r1", "other", user_id="u1"))
    assert (await storage.sessions.get_run("s-r1")).session_id == "s"


async def test_list_rename_create_delete_sessions(storage: Any) -> None:
    await add_run(storage, "a1", 1, user_id="alice")
    await add_run(storage, "b1", 1, user_id="bob")
    await add_run(storage, "a2", 1, user_id="alice")
    other = RunRecord("x", "o1", agent_id="other-agent", user_id="alice", status="completed")
    await storage.sessions.finish_run(other)

    alice = await storage.sessions.list_sessions(user_id="alice")
    assert [s.session_id for s in alice] == ["o1", "a2", "a1"]
    assert [
        s.session_id
        for s in await storage.sessions.list_sessions(agent_id="agent", user_id="alice")
    ] == ["a2", "a1"]
    assert [s.session_id for s in await storage.sessions.list_sessions(limit=2, offset=1)] == [
        "a2",
        "b1",
    ]

    renamed = await storage.sessions.rename_session("a1", "Trip to Rome", user_id="alice")
    assert renamed.name == "Trip to Rome"
    assert (await storage.sessions.get_session("a1")).name == "Trip to Rome"
    with pytest.raises(NotFound):
        await storage.sessions.rename_session("missing", "x")

    made = await storage.sessions.create_session(
        SessionRecord(
            "new", agent_id="agent", user_id="carol", name="N", state={"v": 1}, metadata={"m": 1}
        )
    )
    again = await storage.sessions.create_session(
        SessionRecord("new", user_id="carol", state={"v": 2})
    )
    assert made.state == again.state == {"v": 1} and again.metadata == {"m": 1}
    assert await storage.sessions.update_state(
        "new", changes={"w": 2}, deletes=["v"], user_id="carol"
    ) == {"w": 2}
    with pytest.raises(NotFound):
        await storage.sessions.update_state("missing", changes={"w": 2})

    await storage.memory.set_working_memory("session", "a1", "notes")
    assert await storage.sessions.delete_session("a1", user_id="alice")
    assert await storage.sessions.get_session("a1") is None
    assert await storage.sessions.list_runs("a1") == []
    assert await storage.sessions.get_run("a1-r1") is None
    assert await storage.memory.get_working_memory("session", "a1") is None
    assert not await storage.sessions.delete_session("a1")
    assert (await storage.sessions.get_session("a2")) is not None


async def test_list_runs_limit_returns_latest_in_order(storage: Any) -> None:
    for i in range(4):
        await add_run(storage, "s", i)
    runs = await storage.sessions.list_runs("s", limit=2)
    assert [r.run_id for r in runs] == ["s-r2", "s-r3"]


async def test_concurrent_tasks_on_one_session_lose_nothing(storage: Any) -> None:
    async def one(i: int) -> None:
        rec = RunRecord(f"t{i}", "shared", user_id="u1")
        ctx = await storage.sessions.begin_run(rec, history=HistoryWindow(last_runs=3))
        ctx.state[f"k{i}"] = i
        rec.messages = turn(i)
        rec.status = "completed"
        changes, deletes = ctx.state_changes()
        await storage.sessions.finish_run(rec, state_changes=changes, state_deletes=deletes)

    await asyncio.gather(*(one(i) for i in range(12)))
    runs = await storage.sessions.list_runs("shared")
    assert sorted(r.run_id for r in runs) == sorted(f"t{i}" for i in range(12))
    assert all(r.status == "completed" for r in runs)
    assert (await storage.sessions.get_session("shared")).state == {f"k{i}": i for i in range(12)}


async def test_bad_history_window_is_a_user_error() -> None:
    with pytest.raises(ValueError):
        HistoryWindow(last_runs=-1)


def test_storage_errors_are_typed() -> None:
    from vivace.storage import CorruptDatabaseError, SchemaVersionError

    assert issubclass(SchemaVersionError, StorageError)
    assert issubclass(CorruptDatabaseError, StorageError)
    assert issubclass(SessionOwnershipError, UserError)
