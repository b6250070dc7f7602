"""The workflow storage domain (``storage.workflows``) on every backend: runs and steps,
exactly-once resume claims, parking with a resume that arrived meanwhile, leases and
recovery claims, cancel requests, listing, pruning."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vivace.errors import StepNotSuspended, WorkflowRunNotFound
from vivace.storage import StepRecord, WorkflowRunRecord


def _run(run_id: str, **kw: Any) -> WorkflowRunRecord:
    return WorkflowRunRecord(run_id, kw.pop("workflow", "wf"), owner=kw.pop("owner", "w1"), **kw)


async def test_runs_steps_and_parking(storage: Any) -> None:
    wfs = storage.workflows
    run = _run("r1", input={"n": 1}, user_id="ann")
    assert await wfs.create_run(run, lease=30)
    assert not await wfs.create_run(_run("r1"))  # ids are chosen once
    await wfs.save_step("r1", StepRecord("a", "completed", {"x": [1, "é"]}, seq=0))
    await wfs.save_step("r1", StepRecord("b", "suspended", payload={"q": 1}, seq=1))
    run.status = "suspended"
    run.suspended = [{"path": "b", "kind": "suspend", "event": None, "payload": {"q": 1}}]
    run.state, run.seq = {"k": 1}, 7
    assert await wfs.finish_run(run, owner="w1") == []
    got, steps = await wfs.load_run("r1")
    assert got.status == "suspended" and got.state == {"k": 1} and got.seq == 7
    assert got.lease_expires_at is None and got.user_id == "ann" and got.input == {"n": 1}
    assert [s.path for s in steps] == ["a", "b"] and steps[0].output == {"x": [1, "é"]}
    # a resume claims the parked run exactly once
    outcome = await wfs.resume_step("r1", "b", {"ok": True}, owner="w2", lease=30)
    assert outcome.claimed and outcome.run.status == "running" and outcome.run.owner == "w2"
    with pytest.raises(StepNotSuspended) as info:
        await wfs.resume_step("r1", "b", {"ok": True}, owner="w3")
    assert info.value.step == "b" and info.value.status == "running"
    with pytest.raises(StepNotSuspended):
        await wfs.resume_step("r1", "a", {}, owner="w3")  # completed, not parked
    with pytest.raises(WorkflowRunNotFound):
        await wfs.resume_step("nope", "b", {}, owner="w3")
    steps = (await wfs.load_run("r1"))[1]
    assert steps[1].status == "resumed" and steps[1].resume == [{"ok": True}]
    # the old owner cannot overwrite the run any more
    run.status, run.output = "completed", 1
    await wfs.finish_run(run, owner="w1")
    assert (await wfs.get_run("r1")).status == "running"


async def test_concurrent_resumes_one_claim(storage: Any) -> None:
    wfs = storage.workflows
    run = _run("r2")
    await wfs.create_run(run)
    await wfs.save_step("r2", StepRecord("s", "suspended", seq=0))
    run.status, run.suspended = "suspended", [{"path": "s", "kind": "suspend"}]
    await wfs.finish_run(run, owner="w1")
    results = await asyncio.gather(
        *(wfs.resume_step("r2", "s", i, owner=f"o{i}") for i in range(6)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1 and wins[0].claimed
    assert all(isinstance(r, StepNotSuspended) for r in results if isinstance(r, BaseException))


async def test_a_resume_recorded_while_running_stops_the_parking(storage: Any) -> None:
    wfs = storage.workflows
    run = _run("r3")
    await wfs.create_run(run)
    await wfs.save_step("r3", StepRecord("s", "suspended", seq=0))
    outcome = await wfs.resume_step("r3", "s", "data", owner="w9")  # the run still runs
    assert not outcome.claimed
    run.status, run.suspended = "suspended", [{"path": "s", "kind": "suspend"}]
    resumed = await wfs.finish_run(run, owner="w1")
    assert [s.path for s in resumed] == ["s"] and resumed[0].resume == ["data"]
    assert (await wfs.get_run("r3")).status == "running"  # not parked
    # events: a step waiting for one
    run4 = _run("r4")
    await wfs.create_run(run4)
    await wfs.save_step("r4", StepRecord("w", "suspended", kind="event", event="paid", seq=0))
    run4.status, run4.suspended = "waiting", [{"path": "w", "kind": "event", "event": "paid"}]
    await wfs.finish_run(run4, owner="w1")
    with pytest.raises(StepNotSuspended):
        await wfs.resume_step("r4", "", {}, owner="x", event="shipped")
    assert (await wfs.resume_step("r4", "", {"amount": 3}, owner="x", event="paid")).claimed


async def test_leases_recovery_and_cancel(storage: Any) -> None:
    wfs = storage.workflows
    await wfs.create_run(_run("live", owner="w1"), lease=60)
    await wfs.create_run(_run("dead", owner="w2"), lease=0.01)
    await wfs.create_run(_run("other", owner="w2", workflow="x"), lease=0.01)
    await wfs.create_run(_run("dbos", owner=None, engine="dbos"), lease=0.01)
    await asyncio.sleep(0.05)
    assert await wfs.heartbeat("w1", ["live", "dead"], lease=60) == set()
    claims = await asyncio.gather(
        *(wfs.claim_expired(f"c{i}", workflows=["wf"], lease=60) for i in range(4))
    )
    won = [c for c in claims if c]
    assert len(won) == 1 and [r.run_id for r in won[0]] == ["dead"]  # once, this workflow
    assert (await wfs.get_run("dead")).lease_expires_at > time.time() + 30
    assert await wfs.claim_expired("c9", workflows=["wf"]) == []  # "dbos" has no lease
    # cancel: a running run is flagged for its worker, a parked one cancelled at once
    assert await wfs.request_cancel("live") == "running"
    assert await wfs.heartbeat("w1", ["live"]) == {"live"}
    run = _run("parked")
    await wfs.create_run(run)
    run.status, run.suspended = "suspended", [{"path": "s"}]
    await wfs.finish_run(run, owner="w1")
    assert await wfs.request_cancel("parked") == "cancelled"
    got = await wfs.get_run("parked")
    assert got.status == "cancelled" and got.error["code"] == "workflow_cancelled"
    assert await wfs.request_cancel("parked") == "cancelled"
    assert await wfs.request_cancel("nope") is None


async def test_list_delete_prune(storage: Any) -> None:
    wfs = storage.workflows
    for i, (status, user) in enumerate(
        [("completed", "ann"), ("suspended", "ann"), ("completed", "bob"), ("failed", None)]
    ):
        run = _run(f"l{i}", created_at=1000.0 + i, user_id=user)
        await wfs.create_run(run)
        run.status = status
        await wfs.finish_run(run, owner="w1")
    assert [r.run_id for r in await wfs.list_runs(workflow="wf")] == ["l3", "l2", "l1", "l0"]
    assert [r.run_id for r in await wfs.list_runs(statuses=["completed"])] == ["l2", "l0"]
    assert [r.run_id for r in await wfs.list_runs(user_id="ann", limit=1, offset=1)] == ["l0"]
    assert await wfs.list_runs(statuses=[]) == []
    await wfs.save_step("l0", StepRecord("s", "completed", 1))
    assert await wfs.delete_run("l0") and not await wfs.delete_run("l0")
    assert await wfs.load_run("l0") is None
    # prune keeps parked runs
    assert (await storage.prune({"workflows": 0}))["workflows"] == 2
    assert [r.run_id for r in await wfs.list_runs()] == ["l1"]
