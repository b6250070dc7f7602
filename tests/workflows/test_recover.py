"""``recover()`` continues crashed runs independently: one that cannot be continued does not
stop, lose or orphan the others.

The crashed runs are made through the public storage API (a run created with a lease that
has expired, as a worker that died right after starting it leaves it); the unreadable one has
a journal row damaged in the SQLite file itself.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from vivace.storage import SQLiteStorage
from vivace.storage.records import StepRecord, WorkflowRunRecord
from vivace.workflows import StepContext, Workflow, recover, step

STARTED: list[str] = []
STOPPED: list[str] = []
RELEASE: dict[str, asyncio.Event] = {}


@step
async def slow(n: int, ctx: StepContext) -> int:
    STARTED.append(ctx.run_id)
    gate = RELEASE.get(ctx.run_id)
    try:
        if gate is not None:
            await gate.wait()
    except asyncio.CancelledError:
        STOPPED.append(ctx.run_id)
        raise
    return n * 10


async def _crashed(storage: Any, run_id: str, n: int) -> None:
    """A run a dead worker left behind: ``running``, its lease already expired."""
    await storage.workflows.create_run(
        WorkflowRunRecord(run_id, "recovering", input=n, owner="dead-worker"), lease=-1.0
    )


def _damage_step(db: Path, run_id: str) -> None:
    with sqlite3.connect(db) as c:
        n = c.execute(
            "UPDATE vivace_workflow_steps SET data = '{not json' WHERE run_id = ?", (run_id,)
        ).rowcount
    assert n == 1


async def test_a_run_that_cannot_be_recovered_leaves_the_others_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    STARTED.clear()
    db = tmp_path / "wf.db"
    storage = SQLiteStorage(str(db))
    try:
        wf = Workflow("recovering", storage=storage, lease=0.5).then(slow)
        await _crashed(storage, "good", 1)
        await _crashed(storage, "bad", 2)
        # the bad run's journal is unreadable: loading it for recovery fails
        await storage.workflows.save_step(
            "bad", StepRecord("other", "completed", output=1, seq=1, finished_at=time.time())
        )
        _damage_step(db, "bad")
        RELEASE["good"] = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, RELEASE["good"].set)  # the good run is still going when bad fails
        with caplog.at_level(logging.ERROR, logger="vivace.workflows"):
            results = await recover([wf])
        # the good run was continued to its end and its result is returned
        assert [(r.run_id, r.status, r.output) for r in results] == [("good", "completed", 10)]
        assert STARTED == ["good"]
        # it had ended (and was stored) when recover returned
        good = await wf.get_run("good")
        assert good is not None and good.status == "completed"
        # the bad one is named in the log and stays claimable once its new lease expires
        assert any("bad" in r.getMessage() for r in caplog.records)
        bad = await storage.workflows.get_run("bad")
        assert bad is not None and bad.status == "running"
        assert bad.owner != "dead-worker"  # claimed by this process
        # a later pass, the journal repaired, continues it
        with sqlite3.connect(db) as c:
            c.execute("DELETE FROM vivace_workflow_steps WHERE run_id = 'bad'")
        await asyncio.sleep(0.6)
        again = await recover([wf])
        assert [(r.run_id, r.status, r.output) for r in again] == [("bad", "completed", 20)]
    finally:
        RELEASE.clear()
        await storage.close()


async def test_cancelling_recover_stops_every_continuation(tmp_path: Path) -> None:
    STARTED.clear()
    STOPPED.clear()
    storage = SQLiteStorage(str(tmp_path / "wf.db"))
    try:
        wf = Workflow("recovering", storage=storage, lease=0.5).then(slow)
        for i in range(3):
            await _crashed(storage, f"r{i}", i)
            RELEASE[f"r{i}"] = asyncio.Event()  # never set: each step waits until cancelled
        task = asyncio.get_running_loop().create_task(recover([wf]))
        while len(STARTED) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # every continuation was stopped before recover's cancellation reached its caller
        assert sorted(STOPPED) == ["r0", "r1", "r2"]
        # their leases expire: the runs are still there to be recovered
        for i in range(3):
            run = await storage.workflows.get_run(f"r{i}")
            assert run is not None and run.status == "running"
    finally:
        RELEASE.clear()
        await storage.close()


async def test_a_long_recovered_run_does_not_hold_up_the_next_recovery(tmp_path: Path) -> None:
    """The ``Worker`` (what ``vivace serve`` runs) starts what each pass recovers in the
    background: a run crashed while a recovered one is still going is taken over at the next
    pass, not when the long one ends."""
    from vivace.workflows import Worker

    STARTED.clear()
    storage = SQLiteStorage(str(tmp_path / "wf.db"))
    try:
        wf = Workflow("recovering", storage=storage, lease=0.5).then(slow)
        RELEASE["long"] = asyncio.Event()  # set only at the end
        await _crashed(storage, "long", 1)
        async with Worker([wf], recover_every=0.05, schedules=False):
            while "long" not in STARTED:
                await asyncio.sleep(0.01)
            await _crashed(storage, "later", 2)  # another worker dies meanwhile
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                later = await storage.workflows.get_run("later")
                if later is not None and later.status == "completed":
                    break
                await asyncio.sleep(0.05)
            assert later is not None and later.status == "completed"
            long = await storage.workflows.get_run("long")
            assert long is not None and long.status == "running"  # still going, here
            RELEASE["long"].set()
            while (await storage.workflows.get_run("long")).status != "completed":  # type: ignore[union-attr]
                await asyncio.sleep(0.02)
    finally:
        RELEASE.clear()
        await storage.close()


@step
def blocking(n: int) -> int:
    time.sleep(1.2)  # blocks whatever thread runs it, longer than the lease
    return n + 1


async def test_a_long_sync_step_keeps_its_lease(tmp_path: Path) -> None:
    """A persisted run's sync step runs in a thread, so the event loop goes on renewing the
    run's lease: another worker never sees it expired (and never runs the step again) while
    this live process is still running it. Watched from another thread with its own
    storage, as another worker would see it."""
    import threading

    db = str(tmp_path / "wf.db")
    storage = SQLiteStorage(db)
    expired_seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        async def poll() -> None:
            other = SQLiteStorage(db)
            try:
                while not stop.is_set():
                    run = await other.workflows.get_run("blocked")
                    now = time.time()
                    lease = run.lease_expires_at if run is not None else None
                    if run is not None and run.status == "running" and lease and lease < now:
                        expired_seen.append(now - lease)
                    await asyncio.sleep(0.03)
            finally:
                await other.close()

        asyncio.run(poll())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wf = Workflow("blocking", storage=storage, lease=0.3).then(blocking)
        result = await wf.arun(1, run_id="blocked")
        assert result.status == "completed" and result.output == 2
    finally:
        stop.set()
        watcher.join(10)
        await storage.close()
    assert expired_seen == []
