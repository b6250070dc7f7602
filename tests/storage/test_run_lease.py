"""The run lease is a storage option (constructor, ``open_storage``, URL) used by every call
that marks a run ``running``, and by the agent's runs; a killed run reads ``running`` until
its lease expires, then ``incomplete``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from vivace import Agent, RunContext
from vivace.errors import UserError
from vivace.storage import InMemoryStorage, RunRecord, open_storage
from vivace.testing import FunctionModel, call


def expires_in(record: RunRecord) -> float:
    assert record.lease_expires_at is not None
    return record.lease_expires_at - time.time()


async def test_the_lease_is_a_storage_option_on_every_backend(storage_factory: Any) -> None:
    long = storage_factory(run_lease=5000.0)
    assert long.run_lease == 5000.0
    rec = RunRecord("r1", "s", user_id="u1")
    await long.sessions.begin_run(rec)
    assert 4000 < expires_in(await long.sessions.get_run("r1")) <= 5000
    await long.sessions.start_run(RunRecord("r2", "s", user_id="u1"))
    assert 4000 < expires_in(await long.sessions.get_run("r2")) <= 5000
    rec.status = "paused"
    rec.paused = {"pending": []}
    await long.sessions.finish_run(rec)
    claimed = await long.sessions.resume_run("r1", user_id="u1")
    assert 4000 < expires_in(claimed) <= 5000
    assert 4000 < expires_in(await long.sessions.get_run("r1")) <= 5000

    short = storage_factory(run_lease=0.05)
    await short.sessions.begin_run(RunRecord("r3", "s", user_id="u1"))
    await asyncio.sleep(0.1)
    assert (await short.sessions.get_run("r3")).status == "incomplete"
    await short.sessions.start_run(RunRecord("r4", "s", user_id="u1"))
    await asyncio.sleep(0.1)
    assert (await short.sessions.get_run("r4")).status == "incomplete"
    await short.sessions.start_run(RunRecord("r5", "s", user_id="u1"), lease=5000)
    assert 4000 < expires_in(await short.sessions.get_run("r5")) <= 5000
    assert await short.sessions.heartbeat("r5")  # renewed by the storage's lease
    assert expires_in(await short.sessions.get_run("r5")) <= 0.05


async def test_the_lease_from_open_storage_and_the_url(tmp_path: Path, postgres_url: str) -> None:
    sep = "&" if "?" in postgres_url else "?"
    schema = f"lease_{uuid.uuid4().hex[:10]}"
    stores = [
        open_storage("memory://", run_lease=4321),
        open_storage(f"sqlite:///{tmp_path / 'a.db'}", run_lease=4321),
        open_storage(f"sqlite:///{tmp_path / 'b.db'}?run_lease=4321"),
        open_storage(f"{postgres_url}{sep}run_lease=4321&schema={schema}"),
    ]
    try:
        for st in stores:
            assert st.run_lease == 4321.0
            rec = RunRecord("r", "s")
            await st.sessions.begin_run(rec)
            assert 4000 < expires_in(await st.sessions.get_run("r")) <= 4321
    finally:
        await stores[-1].run_sync(lambda c: c.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE'))
        for st in stores:
            await st.close()
    assert (tmp_path / "b.db").exists()
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(UserError):
            open_storage(f"sqlite:///{tmp_path / 'c.db'}?run_lease={bad}")
    with pytest.raises(UserError):
        InMemoryStorage(run_lease=0)
    with pytest.raises(UserError):
        open_storage(f"sqlite:///{tmp_path / 'c.db'}?no_such_option=1")


async def test_an_agent_run_uses_the_storage_lease(storage_factory: Any) -> None:
    st = storage_factory(run_lease=4321.0)
    seen: list[float] = []

    async def peek(ctx: RunContext) -> str:
        """Look at the run as stored while it runs."""
        record = await st.sessions.get_run(ctx.run_id)
        seen.append(record.lease_expires_at - time.time())
        return record.status

    def model(messages: list[Any], request: Any) -> Any:
        return call("peek", {}) if messages[-1].role == "user" else "done"

    result = await Agent(model=FunctionModel(model), tools=[peek], storage=st).arun("go")
    assert result.status == "completed"
    assert len(seen) == 1 and 4000 < seen[0] <= 4321


async def test_a_killed_agent_run_reads_running_until_its_lease_expires(
    sql_factory: Any,
) -> None:
    """SIGKILL in the middle of an agent run, with a short lease set in the storage URL."""
    if sql_factory.kind == "sqlite":
        url = f"sqlite:///{sql_factory.path}?run_lease=1.5"
    else:
        sep = "&" if "?" in sql_factory.url else "?"
        url = f"{sql_factory.url}{sep}schema={sql_factory.schema}&run_lease=1.5"
    script = textwrap.dedent(
        """
        import asyncio, sys
        from vivace import Agent, RunContext
        from vivace.testing import FunctionModel, call

        async def hang(ctx: RunContext) -> str:
            '''Never returns.'''
            print(ctx.run_id, flush=True)
            await asyncio.sleep(3600)
            return "never"

        def model(messages, request):
            return call("hang", {}) if messages[-1].role == "user" else "done"

        Agent(model=FunctionModel(model), tools=[hang], storage=sys.argv[1]).run("go", session_id="s")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = (await asyncio.to_thread(proc.stdout.readline)).strip()
    assert run_id, proc.stderr.read() if proc.stderr else ""
    st = sql_factory()
    run = await st.sessions.get_run(run_id)
    assert run.status == "running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # the run reads running until the lease the dead process last renewed runs out...
    assert run.lease_expires_at is not None and run.lease_expires_at - time.time() <= 1.5
    deadline = time.monotonic() + 30
    while (run := await st.sessions.get_run(run_id)).status == "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    # ...then incomplete
    assert run.status == "incomplete"


async def test_leases_are_renewed_while_held_and_stop_with_their_block() -> None:
    # three runs share the store's renewals: the one whose block ends stops being renewed
    # (and reads incomplete once its lease runs out), the others stay running
    from vivace.storage import RunRecord, keep_alive

    st = InMemoryStorage(run_lease=0.6)
    for i in range(3):
        await st.sessions.begin_run(RunRecord(f"r{i}", f"s{i}", user_id="u"))
    async with keep_alive(st.sessions, "r0"), keep_alive(st.sessions, "r1"):
        async with keep_alive(st.sessions, "r2"):
            await asyncio.sleep(0.9)  # past the first lease: alive only if renewed
            statuses = [(await st.sessions.get_run(f"r{i}")).status for i in range(3)]
            assert statuses == ["running"] * 3
        await asyncio.sleep(1.1)
        statuses = [(await st.sessions.get_run(f"r{i}")).status for i in range(3)]
        assert statuses == ["running", "running", "incomplete"]
    await asyncio.sleep(0.9)
    assert [(await st.sessions.get_run(f"r{i}")).status for i in range(3)] == ["incomplete"] * 3


async def test_a_lease_renewal_that_fails_is_retried_and_a_finished_run_is_left_alone() -> None:
    from vivace.storage import RunRecord, keep_alive

    st = InMemoryStorage(run_lease=0.6)
    calls: list[str] = []
    real = st.sessions.heartbeat
    failing = {"r0": 1}

    async def heartbeat(run_id: str, **kw: Any) -> bool:
        calls.append(run_id)
        if failing.get(run_id):
            failing[run_id] -= 1
            raise OSError("the database is briefly unreachable")
        return await real(run_id, **kw)

    st.sessions.heartbeat = heartbeat  # type: ignore[method-assign]
    await st.sessions.begin_run(RunRecord("r0", "s0"))
    await st.sessions.begin_run(RunRecord("r1", "s1"))
    async with keep_alive(st.sessions, "r0"), keep_alive(st.sessions, "r1"):
        rec = await st.sessions.get_run("r1")
        rec.status = "completed"
        await st.sessions.finish_run(rec)  # r1 ends in storage while its block still holds it
        await asyncio.sleep(0.9)
        assert (await st.sessions.get_run("r0")).status == "running"  # renewed after a failure
    assert calls.count("r0") >= 3  # the failure, then every lease / 3
    assert calls.count("r1") == 1  # told it is not running: not renewed again


async def test_a_run_that_joins_after_the_others_were_dropped_is_still_renewed() -> None:
    # the only renewed run ends in storage (dropped at the next tick) while its block is still
    # held; a run that starts afterwards must get renewals of its own
    from vivace.storage import RunRecord, keep_alive

    st = InMemoryStorage(run_lease=0.6)
    await st.sessions.begin_run(RunRecord("r0", "s0"))
    await st.sessions.begin_run(RunRecord("r1", "s1"))
    async with keep_alive(st.sessions, "r0"):
        rec = await st.sessions.get_run("r0")
        rec.status = "completed"
        await st.sessions.finish_run(rec)
        await asyncio.sleep(0.5)  # past a tick: r0 is no longer renewed
        async with keep_alive(st.sessions, "r1"):
            await asyncio.sleep(0.9)  # past r1's first lease
            assert (await st.sessions.get_run("r1")).status == "running"
