"""Suspend and resume inside every construct, on every storage backend and without storage;
exactly-once resumes; typed errors for bad resumes; durable per-step writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.workflows.flows import build, read_log
from vivace.workflows import (
    ResumeDataInvalid,
    StepNotSuspended,
    Workflow,
    WorkflowRunNotFound,
)
from vivace.workflows.engine import store_of

OK = {"ok": True}


@pytest.fixture(params=["none", "memory", "sqlite", "postgres"])
async def flows(request: pytest.FixtureRequest, step_log: str, tmp_path: Any) -> Any:
    """The shared test workflows, without storage and on each storage backend."""
    if request.param == "none":
        yield build(None)
        return
    from tests.conftest import StorageFactory

    factory = StorageFactory(request.param, tmp_path, request)
    st = factory()
    try:
        yield build(st)
    finally:
        await factory.aclose()


async def test_nested(flows: dict[str, Workflow[Any, Any]], step_log: str) -> None:
    wf = flows["nested"]
    r = await wf.arun(1)
    assert r.status == "suspended"
    assert [s.path for s in r.suspended] == ["inner.approve"]
    assert r.suspended[0].payload == {"asked": 2}
    done = await wf.aresume(r.run_id, step="inner.approve", data=OK)
    assert done.status == "completed" and done.output == {"final": 200}
    assert read_log(step_log) == ["inner.start", "inner.approve", "inner.approve", "finish"]


async def test_parallel_branches_resumed_one_at_a_time_in_any_order(
    flows: dict[str, Workflow[Any, Any]], step_log: str
) -> None:
    wf = flows["parallel"]
    r = await wf.arun(3)
    assert r.status == "suspended"
    assert sorted(s.path for s in r.suspended) == ["left", "right"]
    assert r.steps["plain"].status == "completed"
    r2 = await wf.aresume(r.run_id, step="right", data={"ok": False})
    assert r2.status == "suspended" and [s.path for s in r2.suspended] == ["left"]
    r3 = await wf.aresume(r.run_id, step="left", data=OK)
    assert r3.status == "completed"
    assert r3.output == {"final": {"left": 300, "right": -3, "plain": 1003}}
    log = read_log(step_log)
    assert log.count("plain") == 1  # never re-run by the resumes
    assert log.count("finish") == 1


async def test_branch(flows: dict[str, Workflow[Any, Any]], step_log: str) -> None:
    wf = flows["branch"]
    r = await wf.arun(9)
    assert [s.path for s in r.suspended] == ["big"]
    done = await wf.aresume(r.run_id, step="big", data=OK)
    assert done.output == {"final": {"big": 1000}}
    assert "plain" not in read_log(step_log)


async def test_loop_iteration(flows: dict[str, Workflow[Any, Any]], step_log: str) -> None:
    wf = flows["loop"]
    r = await wf.arun(0)
    assert [s.path for s in r.suspended] == ["tick[3]"]
    done = await wf.aresume(r.run_id, step="tick[3]", data=OK)
    assert done.output == {"final": 6}
    log = read_log(step_log)
    assert log == [
        "tick[0]",
        "tick[1]",
        "tick[2]",
        "tick[3]",
        "tick[3]",
        "tick[4]",
        "tick[5]",
        "finish",
    ]


async def test_foreach_item_37_of_100(flows: dict[str, Workflow[Any, Any]], step_log: str) -> None:
    wf = flows["foreach"]
    r = await wf.arun(list(range(100)))
    assert r.status == "suspended"
    assert [s.path for s in r.suspended] == ["item[37]"]
    assert sum(1 for p, s in r.steps.items() if s.status == "completed") == 99
    done = await wf.aresume(r.run_id, data=OK)  # the only suspended step: no path needed
    out = done.output["final"]
    assert out[37] == 1037 and out[36] == 36 and len(out) == 100
    log = read_log(step_log)
    assert log.count("item[37]") == 2 and log.count("item[5]") == 1 and len(log) == 102


async def test_resume_errors_are_typed_and_lose_nothing(
    flows: dict[str, Workflow[Any, Any]],
) -> None:
    wf = flows["parallel"]
    r = await wf.arun(3)
    with pytest.raises(ResumeDataInvalid):
        await wf.aresume(r.run_id, step="left", data={"ok": "not a bool"})
    with pytest.raises(StepNotSuspended) as info:
        await wf.aresume(r.run_id, step="plain", data=OK)
    assert info.value.step == "plain" and info.value.status == "suspended"
    with pytest.raises(StepNotSuspended):
        await wf.aresume(r.run_id, data=OK)  # two are suspended: which one?
    with pytest.raises(WorkflowRunNotFound):
        await wf.aresume("no-such-run", step="left", data=OK)
    # the failed attempts changed nothing: both branches still resume
    await wf.aresume(r.run_id, step="left", data=OK)
    done = await wf.aresume(r.run_id, step="right", data=OK)
    assert done.status == "completed"
    # finished: a typed error (without storage the process forgets finished runs)
    with pytest.raises((StepNotSuspended, WorkflowRunNotFound)) as info:
        await wf.aresume(r.run_id, step="left", data=OK)
    if isinstance(info.value, StepNotSuspended):
        assert info.value.status == "completed"


async def test_concurrent_resumes_of_one_step_one_wins(
    flows: dict[str, Workflow[Any, Any]],
) -> None:
    wf = flows["nested"]
    r = await wf.arun(1)
    results = await asyncio.gather(
        *(wf.aresume(r.run_id, step="inner.approve", data=OK) for _ in range(5)),
        return_exceptions=True,
    )
    wins = [x for x in results if not isinstance(x, BaseException)]
    losses = [x for x in results if isinstance(x, BaseException)]
    assert len(wins) == 1 and wins[0].status == "completed"
    assert len(losses) == 4 and all(isinstance(x, StepNotSuspended) for x in losses)


async def test_stored_run_snapshot_and_listing(wf_storage: Any, step_log: str) -> None:
    wfs = build(wf_storage)
    wf = wfs["parallel"]
    await wf.arun(3, run_id="snap-1")
    got = await wf.get_run("snap-1")
    assert got is not None and got.status == "suspended"
    assert sorted(s.path for s in got.suspended) == ["left", "right"]
    assert got.steps["plain"].output == 1003
    assert got.steps["left"].payload == {"asked": 3}
    listed = await wf.list_runs(status="suspended")
    assert [x.run_id for x in listed] == ["snap-1"]
    assert await wf.list_runs(status="completed") == []
    assert await wf.acancel("snap-1") == "cancelled"
    assert (await wf.get_run("snap-1")).status == "cancelled"
    with pytest.raises(StepNotSuspended) as info:
        await wf.aresume("snap-1", step="left", data=OK)
    assert info.value.status == "cancelled"


async def test_each_step_writes_only_its_own_row(tmp_path: Any) -> None:
    """Durable after every step, O(step): one step row per step, the run row only at the
    start and the end, and the bytes written per step do not grow with the run."""
    from vivace.storage import SQLiteStorage
    from vivace.storage.sql.workflows import LiteWorkflows

    class Counting(LiteWorkflows):
        def __init__(self, engine: Any) -> None:
            super().__init__(engine)
            self.step_bytes: list[int] = []
            self.run_writes = 0

        async def save_step(self, run_id: str, step: Any) -> None:
            self.step_bytes.append(len(json.dumps(step.to_dict(), default=str)))
            await super().save_step(run_id, step)

        async def create_run(self, run: Any, **kw: Any) -> bool:
            self.run_writes += 1
            return await super().create_run(run, **kw)

        async def finish_run(self, run: Any, **kw: Any) -> Any:
            self.run_writes += 1  # the last step's row is written in the same transaction
            for step in kw.get("steps", ()):
                self.step_bytes.append(len(json.dumps(step.to_dict(), default=str)))
            return await super().finish_run(run, **kw)

    from tests.workflows.test_runs import inc

    storage = SQLiteStorage(str(tmp_path / "w.db"))
    store = storage.workflows = Counting(storage.engine)
    wf = Workflow("many", input=int, storage=storage)
    for i in range(60):
        wf.then(inc.with_id(f"s{i:02d}"))
    r = await wf.arun(0)
    assert r.output == 60
    assert store.run_writes == 2
    assert len(store.step_bytes) == 60
    assert max(store.step_bytes[10:]) <= max(store.step_bytes[:10]) + 4  # flat, not growing
    # and it really is durable: another storage on the same file reads every step
    other = SQLiteStorage(str(tmp_path / "w.db"))
    loaded = await other.workflows.load_run(r.run_id)
    assert loaded is not None and len(loaded[1]) == 60 and loaded[0].status == "completed"
    await storage.close()
    await other.close()
    assert store_of(wf) is store


async def test_resume_while_the_run_still_works_is_picked_up_before_parking(
    wf_storage: Any,
) -> None:
    """A branch suspends while its sibling is still running; the resume arrives before the
    run parks: it is recorded (the run is not claimed twice) and the run goes on by itself."""
    from vivace.workflows import StepContext, step

    gate = asyncio.Event()

    @step(resume=str)
    async def ask(n: int, ctx: StepContext) -> str:
        return f"{n}:{await ctx.suspend('?')}"

    @step
    async def slow(n: int) -> int:
        await gate.wait()
        return n + 1

    wf = Workflow("early", input=int, storage=wf_storage).parallel([ask, slow])
    task = asyncio.ensure_future(wf.arun(1, run_id="early-1"))
    for _ in range(200):  # until ask's suspension is stored
        got = await wf.get_run("early-1")
        if got is not None and "ask" in got.steps and got.steps["ask"].status == "suspended":
            break
        await asyncio.sleep(0.01)
    queued = await wf.aresume("early-1", step="ask", data="yes")
    assert queued.status == "running"  # the data is recorded; the running worker takes it
    with pytest.raises(StepNotSuspended):
        await wf.aresume("early-1", step="ask", data="again")
    gate.set()
    result = await task
    assert result.status == "completed"
    assert result.output == {"ask": "1:yes", "slow": 2}
