"""PostgreSQL connections are kept, not churned, when more runs start at once than the pool
holds.

With overflow connections (SQLAlchemy's default), every burst above the pool size opened
new PostgreSQL sessions and closed them again as soon as they were returned: a backend
process started per transaction, which cut a server's runs/s by ~40% at 64 concurrent
requests (``benchmarks/bench_server.py --postgres``). Runs now wait for a pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from vivace import Agent
from vivace.errors import StorageError
from vivace.storage import PostgresStorage
from vivace.testing import FunctionModel


async def _sessions_opened(conn: Any) -> int:
    await conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
    row = await conn.exec_driver_sql(
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    )
    return int(row.scalar_one())


async def _sessions_opened_by(
    postgres_url: str, storage: Any, work: Callable[[], Awaitable[None]]
) -> int:
    """PostgreSQL sessions opened while ``work()`` runs and ``storage`` closes (backends
    report their session counts as they exit)."""
    reader = create_async_engine(PostgresStorage(postgres_url).url)
    try:
        async with reader.connect() as conn:
            before = await _sessions_opened(conn)
            await work()
            await storage.close()
            await asyncio.sleep(0.5)
            return await _sessions_opened(conn) - before
    finally:
        await reader.dispose()


async def _drop_schema(postgres_url: str, schema: str) -> None:
    engine = create_async_engine(PostgresStorage(postgres_url).url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await engine.dispose()


async def test_bursts_of_runs_reuse_the_pooled_connections(postgres_url: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    storage = PostgresStorage(postgres_url, schema=schema)
    agent = Agent(model=FunctionModel(lambda messages, request: "ok"), storage=storage)

    async def bursts() -> None:
        for burst in range(4):
            results = await asyncio.gather(
                *(agent.arun("你好 👋", session_id=f"s{burst}-{i}", user_id="u") for i in range(64))
            )
            assert [r.status for r in results] == ["completed"] * 64
        stored = await storage.sessions.get_session("s3-63")
        assert stored is not None and stored.state == {}

    try:
        await agent.arun("warm up", session_id="warm", user_id="u")  # creates the tables
        opened = await _sessions_opened_by(postgres_url, storage, bursts)
    finally:
        await storage.close()
        await _drop_schema(postgres_url, schema)
    # 256 runs, 64 at a time: at most the pool's 20 connections (minus the warm-up's) are
    # opened, never one per transaction above the pool size
    assert opened <= 20, f"{opened} PostgreSQL sessions opened for 256 runs"


async def test_runs_wait_for_a_small_pool_without_deadlock(postgres_url: str) -> None:
    """No path holds one pooled connection while it waits for another: 24 runs at once on
    a pool of 3 (set through ``engine_options``) all complete instead of timing out."""
    options = {"pool_size": 3, "pool_timeout": 5}
    schema = f"t_{uuid.uuid4().hex[:12]}"
    storage = PostgresStorage(postgres_url, schema=schema, engine_options=options)
    agent = Agent(model=FunctionModel(lambda messages, request: "ok"), storage=storage)
    try:
        results = await asyncio.gather(
            *(agent.arun("hi", session_id=f"s{i}", user_id="u") for i in range(24))
        )
        assert {r.status for r in results} == {"completed"}
    finally:
        await storage.close()
        await _drop_schema(postgres_url, schema)


async def test_pool_size_from_the_url(postgres_url: str) -> None:
    """``?pool_size=`` sizes the pool (for many workers on one server's max_connections): 24
    runs at once on ``?pool_size=2`` open at most 2 sessions; a bad size is a UserError."""
    from vivace.errors import UserError
    from vivace.storage import open_storage

    schema = f"t_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in postgres_url else "?"
    storage = open_storage(f"{postgres_url}{sep}pool_size=2&schema={schema}")
    agent = Agent(model=FunctionModel(lambda messages, request: "ok"), storage=storage)

    async def runs() -> None:
        results = await asyncio.gather(
            *(agent.arun("hi", session_id=f"s{i}", user_id="u") for i in range(24))
        )
        assert {r.status for r in results} == {"completed"}

    try:
        opened = await _sessions_opened_by(postgres_url, storage, runs)
    finally:
        await storage.close()
        await _drop_schema(postgres_url, schema)
    assert opened <= 2, opened
    for bad in ("0", "-3", "many", "2.5"):
        with pytest.raises(UserError, match="pool_size"):
            open_storage(f"{postgres_url}{sep}pool_size={bad}")


async def _pool_pids(storage: PostgresStorage, n: int) -> set[int]:
    """The server pids of ``n`` pooled connections (held at once, then handed back idle)."""
    engine = storage.sessions.engine
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(engine.driver()) for _ in range(n)]  # type: ignore[attr-defined]
        return {c.get_server_pid() for c in conns}


async def _kill(postgres_url: str, pids: set[int]) -> None:
    killer = create_async_engine(PostgresStorage(postgres_url).url)
    try:
        async with killer.connect() as conn:
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE pid IN ({', '.join(str(p) for p in pids)})"
            )
    finally:
        await killer.dispose()
    await asyncio.sleep(0.2)


async def test_pooled_connections_killed_while_idle_are_replaced_without_leaks(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a PostgreSQL restart or an administrator ending sessions: each dead pooled connection
    # fails at most one call (there is no ping before use), then is replaced; nothing leaks
    # and nothing is logged as an error
    schema = f"t_{uuid.uuid4().hex[:12]}"
    storage = PostgresStorage(postgres_url, schema=schema)
    agent = Agent(model=FunctionModel(lambda messages, request: "ok"), storage=storage)
    caplog.set_level(logging.INFO, logger="sqlalchemy.pool")

    async def runs(prefix: str, n: int) -> list[str]:
        statuses = []
        for i in range(n):
            try:
                statuses.append((await agent.arun("再见 🌙", session_id=f"{prefix}{i}")).status)
            except StorageError:
                statuses.append("storage error")
        return statuses

    try:
        await agent.arun("warm up", session_id="warm")
        first = await _pool_pids(storage, 6)
        # 1. killed behind the pool's back: each dead connection fails one call (there is no
        #    ping before use), is invalidated, and its record reconnects on its next checkout
        await _kill(postgres_url, first)
        statuses = await runs("a", 12)
        assert statuses[-6:] == ["completed"] * 6, statuses
        assert statuses.count("storage error") <= len(first)
        second = await _pool_pids(storage, 6)
        assert not (second & first)
        # 2. again, noticed first by a query of SQLAlchemy's own (which invalidates its pool)
        await _kill(postgres_url, second)
        failed = 0
        for i in range(8):
            try:
                await storage.sessions.get_session(f"a{i}")
            except StorageError:
                failed += 1
        assert 1 <= failed <= len(second)
        statuses = await runs("b", 12)
        assert statuses[-6:] == ["completed"] * 6, statuses
        assert statuses.count("storage error") <= len(second)
        stored = await storage.sessions.get_session("b11")
        assert stored is not None
        third = await _pool_pids(storage, 6)
        assert not (third & (first | second))
    finally:
        await storage.close()
        await _drop_schema(postgres_url, schema)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_runs_of_one_session_ending_together_never_deadlock(postgres_url: str) -> None:
    # many runs of one session at once, as concurrent workers make them: each reads the
    # counter, writes it back (a compare-and-swap; on a conflict the locking path, SELECT ...
    # FOR UPDATE, decides) and a run that lost ends failed without state changes (its end locks
    # the session row without writing it): every run is stored, the counter is exact
    from vivace.storage import RunRecord, StateConflict

    schema = f"t_{uuid.uuid4().hex[:12]}"
    storage = PostgresStorage(postgres_url, schema=schema)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        rec = RunRecord(f"r{i}", "shared", user_id="u1")
        ctx = await storage.sessions.begin_run(rec)
        ctx.state["counter"] = ctx.state.get("counter", 0) + 1
        rec.status = "completed"
        try:
            await storage.sessions.finish_run(rec, state=ctx.state)
        except StateConflict:
            rec.status = "failed"
            await storage.sessions.finish_run(rec)
        outcomes.append(rec.status)

    try:
        for wave in range(40):
            await asyncio.gather(*(one(wave * 16 + i) for i in range(16)))
        runs = await storage.sessions.list_runs("shared")
        assert len(runs) == 640 and sorted(r.status for r in runs) == sorted(outcomes)
        state = (await storage.sessions.get_session("shared")).state
        assert state["counter"] == outcomes.count("completed")
    finally:
        await storage.close()
        await _drop_schema(postgres_url, schema)


async def test_a_runs_end_locks_the_session_row_as_an_update_would(postgres_url: str) -> None:
    # without state changes a run's end does not write the session row but locks it FOR NO KEY
    # UPDATE, the lock the update it replaced took, so it queues with the row's other writers
    # as before. (FOR KEY SHARE, which lets it pass a FOR SHARE holder as this test checks,
    # deadlocked with the locking path's FOR UPDATE under concurrent runs of one session:
    # tests/storage/test_state_concurrency.py, about one run in ten.)
    from vivace.storage import RunRecord

    schema = f"t_{uuid.uuid4().hex[:12]}"
    storage = PostgresStorage(postgres_url, schema=schema)
    rec = RunRecord("r1", "shared", user_id="u1")
    await storage.sessions.begin_run(rec)
    holder = create_async_engine(PostgresStorage(postgres_url).url)
    try:
        async with holder.connect() as conn:
            tx = await conn.begin()
            await conn.exec_driver_sql(
                f"SELECT 1 FROM \"{schema}\".vivace_sessions WHERE session_id = 'shared' FOR SHARE"
            )
            rec.status = "completed"
            ending = asyncio.ensure_future(storage.sessions.finish_run(rec))
            await asyncio.sleep(0.5)
            assert not ending.done()  # it waits for the row, as an update would
            await tx.commit()
            assert await asyncio.wait_for(ending, 10) == {}
        assert (await storage.sessions.get_run("r1")).status == "completed"
    finally:
        await holder.dispose()
        await storage.close()
        await _drop_schema(postgres_url, schema)
