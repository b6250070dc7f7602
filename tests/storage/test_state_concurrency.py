"""Session state under concurrent runs: atomic updates never lose a write, and a plain
read-modify-write that raced another run fails with ``StateConflict`` instead of winning.

Agent runs in 8 real processes on SQLite and PostgreSQL, and in concurrent asyncio tasks in
memory; the same rules through the storage seam on every backend.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vivace import Agent, RunContext
from vivace.errors import UserError
from vivace.storage import (
    RunRecord,
    SessionState,
    StateConflict,
    StateNotSerializableError,
)
from vivace.testing import FunctionModel, call

sys.path.insert(0, str(Path(__file__).parent))
from state_worker import run_many

WORKER = str(Path(__file__).with_name("state_worker.py"))
PROCESSES, RUNS = 8, 25


def run_processes(factory: Any, mode: str) -> list[dict[str, Any]]:
    spec = json.dumps(factory.spec())
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, spec, mode, str(RUNS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


async def counter(st: Any) -> Any:
    session = await st.sessions.get_session("shared")
    return session.state.get("counter")


async def run_concurrently(st: Any, mode: str) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(run_many(st, mode, RUNS) for _ in range(PROCESSES))))


async def outcomes(factory: Any, mode: str) -> list[dict[str, Any]]:
    if factory.kind == "memory":
        return await run_concurrently(factory(), mode)
    await factory().setup()  # the schema exists before the processes race
    return await asyncio.to_thread(run_processes, factory, mode)


async def test_atomic_increments_from_concurrent_runs_are_exact(storage_factory: Any) -> None:
    results = await outcomes(storage_factory, "increment")
    assert [r["other"] for r in results] == [[]] * PROCESSES
    assert sum(r["completed"] for r in results) == PROCESSES * RUNS
    assert sum(r["conflicts"] for r in results) == 0
    assert await counter(storage_factory()) == PROCESSES * RUNS


async def test_plain_read_modify_write_with_retries_is_exact(storage_factory: Any) -> None:
    results = await outcomes(storage_factory, "plain-retry")
    assert [r["other"] for r in results] == [[]] * PROCESSES
    assert sum(r["completed"] for r in results) == PROCESSES * RUNS
    assert await counter(storage_factory()) == PROCESSES * RUNS


async def test_plain_read_modify_write_never_silently_loses(storage_factory: Any) -> None:
    results = await outcomes(storage_factory, "plain")
    assert [r["other"] for r in results] == [[]] * PROCESSES
    completed = sum(r["completed"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    assert completed + conflicts == PROCESSES * RUNS
    # every completed run added exactly one; every conflicting run added nothing
    assert await counter(storage_factory()) == completed
    st = storage_factory()
    runs = await st.sessions.list_runs("shared")
    failed = [r for r in runs if r.status == "failed"]
    assert len(failed) == conflicts
    assert all(r.error["type"] == "StateConflict" for r in failed)


# -- the same rules through the seam, on every backend ------------------------------------------


async def begin(st: Any, run_id: str, session_id: str = "s") -> tuple[RunRecord, Any]:
    rec = RunRecord(run_id, session_id, user_id="u1")
    ctx = await st.sessions.begin_run(rec)
    rec.status = "completed"
    return rec, ctx


async def test_a_key_changed_since_it_was_read_is_a_conflict(storage: Any) -> None:
    rec0, ctx0 = await begin(storage, "r0")
    ctx0.state.update(counter=0, note="n")
    await storage.sessions.finish_run(rec0, state=ctx0.state)

    a, ca = await begin(storage, "a")
    b, cb = await begin(storage, "b")
    assert isinstance(ca.state, SessionState) and ca.state == {"counter": 0, "note": "n"}
    ca.state["counter"] += 1
    cb.state["counter"] += 1
    cb.state["mine"] = True
    assert await storage.sessions.finish_run(a, state=ca.state) == {"counter": 1, "note": "n"}
    with pytest.raises(StateConflict) as info:
        await storage.sessions.finish_run(b, state=cb.state)
    assert isinstance(info.value, UserError)
    assert info.value.details["keys"] == ["counter"]
    # nothing of b was written: neither its state nor its run
    assert (await storage.sessions.get_session("s")).state == {"counter": 1, "note": "n"}
    assert (await storage.sessions.get_run("b")).status == "running"


async def test_a_conflict_on_a_deleted_or_new_key(storage: Any) -> None:
    rec0, ctx0 = await begin(storage, "r0")
    ctx0.state["x"] = 1
    await storage.sessions.finish_run(rec0, state=ctx0.state)

    a, ca = await begin(storage, "a")
    b, cb = await begin(storage, "b")
    ca.state["x"] = 2
    ca.state["new"] = "from a"
    del cb.state["x"]  # b deletes what a changed
    await storage.sessions.finish_run(a, state=ca.state)
    with pytest.raises(StateConflict):
        await storage.sessions.finish_run(b, state=cb.state)

    c, cc = await begin(storage, "c")
    d, cd = await begin(storage, "d")
    cc.state["fresh"] = 1  # both create the same key with different values
    cd.state["fresh"] = 2
    await storage.sessions.finish_run(c, state=cc.state)
    with pytest.raises(StateConflict):
        await storage.sessions.finish_run(d, state=cd.state)
    # the same value written by both is a conflict too (both may have computed it from
    # the same read, like two increments of 0 to 1); deleting a deleted key is none
    e, ce = await begin(storage, "e")
    f, cf = await begin(storage, "f")
    ce.state["same"] = cf.state["same"] = "v"
    ce.state["gone"] = 1
    await storage.sessions.finish_run(e, state=ce.state)
    with pytest.raises(StateConflict):
        await storage.sessions.finish_run(f, state=cf.state)
    g, cg = await begin(storage, "g")
    h, ch = await begin(storage, "h")
    del cg.state["gone"]
    del ch.state["gone"]
    await storage.sessions.finish_run(g, state=cg.state)
    await storage.sessions.finish_run(h, state=ch.state)
    assert (await storage.sessions.get_session("s")).state == {
        "x": 2,
        "new": "from a",
        "fresh": 1,
        "same": "v",
    }


async def test_different_keys_and_atomic_updates_merge(storage: Any) -> None:
    rec0, ctx0 = await begin(storage, "r0")
    ctx0.state.update(n=10, log=["start"], prefs={"a": 1})
    await storage.sessions.finish_run(rec0, state=ctx0.state)

    a, ca = await begin(storage, "a")
    b, cb = await begin(storage, "b")
    assert ca.state.increment("n") == 11
    assert ca.state.append("log", "a1", "a2") == ["start", "a1", "a2"]
    assert ca.state.merge("prefs", {"b": 2}) == {"a": 1, "b": 2}
    assert ca.state.increment("fresh", 2.5) == 2.5
    assert cb.state.increment("n", -3) == 7
    cb.state.append("log", "b1")
    cb.state.merge("prefs", {"a": 5})
    cb.state["b_only"] = True
    await storage.sessions.finish_run(a, state=ca.state)
    state = await storage.sessions.finish_run(b, state=cb.state)
    assert state == {
        "n": 8,
        "log": ["start", "a1", "a2", "b1"],
        "prefs": {"a": 5, "b": 2},
        "fresh": 2.5,
        "b_only": True,
    }
    assert (await storage.sessions.get_session("s")).state == state


async def test_an_assignment_after_or_a_change_before_an_update_is_checked(storage: Any) -> None:
    rec0, ctx0 = await begin(storage, "r0")
    ctx0.state.update(n=1, items=["x"])
    await storage.sessions.finish_run(rec0, state=ctx0.state)

    a, ca = await begin(storage, "a")
    b, cb = await begin(storage, "b")
    cb.state.increment("n")
    cb.state["n"] = 100  # an assignment after an update: a plain write of 100
    cb.state["items"].append("untracked")  # changed in place, then updated atomically:
    cb.state.append("items", "tracked")  # the whole list is a plain write
    ca.state.increment("n")
    ca.state.append("items", "from a")
    await storage.sessions.finish_run(a, state=ca.state)
    with pytest.raises(StateConflict) as info:
        await storage.sessions.finish_run(b, state=cb.state)
    assert sorted(info.value.details["keys"]) == ["items", "n"]
    assert (await storage.sessions.get_session("s")).state == {"n": 2, "items": ["x", "from a"]}


async def test_an_update_on_a_value_of_another_type_is_refused(storage: Any) -> None:
    rec0, ctx0 = await begin(storage, "r0")
    ctx0.state.update(name="ann", n=1)
    await storage.sessions.finish_run(rec0, state=ctx0.state)
    _, ca = await begin(storage, "a")
    with pytest.raises(UserError):
        ca.state.increment("name")
    with pytest.raises(UserError):
        ca.state.append("n", 1)
    with pytest.raises(UserError):
        ca.state.increment("n", "1")  # type: ignore[arg-type]
    assert ca.state == {"name": "ann", "n": 1}
    # another run changes the type under an update: the update cannot apply
    b, cb = await begin(storage, "b")
    cb.state.increment("n")
    await storage.sessions.update_state("s", changes={"n": "many"}, user_id="u1")
    with pytest.raises(StateConflict):
        await storage.sessions.finish_run(b, state=cb.state)
    assert (await storage.sessions.get_session("s")).state == {"name": "ann", "n": "many"}
    # not JSON: refused before anything is written, like a plain value
    c, cc = await begin(storage, "c")
    cc.state.append("things", object())
    with pytest.raises(StateNotSerializableError):
        await storage.sessions.finish_run(c, state=cc.state)


async def test_the_agent_records_a_conflicting_run_as_failed(storage: Any) -> None:
    gate = asyncio.Event()
    entered: list[str] = []

    async def bump(ctx: RunContext) -> int:
        """Add one, slowly."""
        value = ctx.session_state.get("counter", 0) + 1
        entered.append(ctx.run_id)
        if len(entered) == 2:
            gate.set()
        await gate.wait()
        ctx.session_state["counter"] = value
        return value

    def model(messages: list[Any], request: Any) -> Any:
        return call("bump", {}) if messages[-1].role == "user" else "done"

    agent = Agent(model=FunctionModel(model), tools=[bump], storage=storage)
    first, second = await asyncio.gather(
        agent.arun("one", session_id="s", user_id="u1"),
        agent.arun("two", session_id="s", user_id="u1"),
    )
    statuses = sorted([first.status, second.status])
    assert statuses == ["completed", "failed"]
    failed = first if first.status == "failed" else second
    assert isinstance(failed.error, StateConflict)
    assert failed.session_state == {"counter": 1}  # what is stored, not what the run wanted
    assert (await storage.sessions.get_session("s")).state == {"counter": 1}
    record = await storage.sessions.get_run(failed.run_id)
    assert record.status == "failed" and record.error["type"] == "StateConflict"
    assert len(record.messages) == 4  # the run's messages are kept
