"""Cancellation requests through storage (``request_cancel`` / ``cancel_requested``): on
in-memory, SQLite and PostgreSQL, seen by every storage object sharing the database."""

from __future__ import annotations

import asyncio
from typing import Any

from vivace.storage import RunRecord


async def _running(st: Any, run_id: str, **kw: Any) -> RunRecord:
    rec = RunRecord(run_id, f"s-{run_id}", agent_id="agent", user_id="u1", **kw)
    await st.sessions.begin_run(rec)
    return rec


async def test_request_on_a_running_run_is_seen(storage: Any) -> None:
    await _running(storage, "r1", metadata={"tag": "keep"})
    await _running(storage, "r2")
    assert await storage.sessions.cancel_requested("r1") is False
    assert await storage.sessions.cancel_requests(["r1", "r2", "nope"]) == set()
    assert await storage.sessions.request_cancel("r1") is True
    assert await storage.sessions.request_cancel("r1") is True  # asking again is harmless
    assert await storage.sessions.cancel_requested("r1") is True
    assert await storage.sessions.cancel_requested("r2") is False
    assert await storage.sessions.cancel_requests(["r1", "r2", "nope"]) == {"r1"}
    assert await storage.sessions.cancel_requests([]) == set()
    got = await storage.sessions.get_run("r1")
    assert got.status == "running"
    assert got.metadata["tag"] == "keep"
    assert isinstance(got.metadata["cancel_requested_at"], float)
    # the lease renewal does not lose the request
    assert await storage.sessions.heartbeat("r1") is True
    assert await storage.sessions.cancel_requested("r1") is True


async def test_no_request_on_runs_that_are_not_running(storage: Any) -> None:
    assert await storage.sessions.request_cancel("unknown") is False
    assert await storage.sessions.cancel_requested("unknown") is False
    done = await _running(storage, "done")
    done.status = "completed"
    await storage.sessions.finish_run(done)
    paused = await _running(storage, "paused")
    paused.status = "paused"
    paused.paused = {"pending": []}
    await storage.sessions.finish_run(paused)
    dead = RunRecord("dead", "s-dead", agent_id="agent")
    await storage.sessions.begin_run(dead, lease=0.0)  # its process "died": incomplete
    await asyncio.sleep(0.01)
    for run_id, status in (("done", "completed"), ("paused", "paused"), ("dead", "incomplete")):
        assert await storage.sessions.request_cancel(run_id) is False, run_id
        assert await storage.sessions.cancel_requested(run_id) is False
        got = await storage.sessions.get_run(run_id)
        assert got.status == status
        assert "cancel_requested_at" not in got.metadata


async def test_finishing_the_run_clears_the_request(storage: Any) -> None:
    rec = await _running(storage, "r")
    assert await storage.sessions.request_cancel("r") is True
    rec.status = "paused"
    rec.paused = {"pending": []}
    await storage.sessions.finish_run(rec)
    assert await storage.sessions.cancel_requested("r") is False
    # resumed: a new running segment starts without the old request
    await storage.sessions.resume_run("r", user_id="u1")
    assert await storage.sessions.cancel_requested("r") is False
    assert await storage.sessions.request_cancel("r") is True
    assert await storage.sessions.cancel_requested("r") is True
    rec.status = "cancelled"
    rec.paused = None
    await storage.sessions.finish_run(rec)
    assert await storage.sessions.cancel_requested("r") is False
    assert (await storage.sessions.get_run("r")).status == "cancelled"
    assert await storage.sessions.request_cancel("r") is False


async def test_another_storage_object_sees_the_request(storage_factory: Any) -> None:
    """Two storage objects on one database: the processes of a multi-worker server."""
    runner, other = storage_factory(), storage_factory()
    await runner.setup()
    await other.setup()
    await _running(runner, "x")
    assert await runner.sessions.cancel_requested("x") is False
    assert await other.sessions.request_cancel("x") is True
    assert await runner.sessions.cancel_requested("x") is True
    assert await runner.sessions.cancel_requests({"x", "y"}) == {"x"}
