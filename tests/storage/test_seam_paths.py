"""The run loop's seam on its fast and fallback paths.

PostgreSQL runs ``begin_run``/``finish_run`` as single statements (the state change as a
compare-and-swap on the state ``begin_run`` read, falling back to a locking transaction when
it changed); SQLite runs them on the sqlite3 connection directly. These tests pin down the
cases where the paths differ: a state changed between ``begin_run`` and ``finish_run``, a
size limit that only the *current* state decides, a rejected run id (nothing may be written),
and the number of round trips a run costs on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from vivace.messages import Message
from vivace.storage import HistoryWindow, RunRecord, RunStateError, StateTooLargeError


def _turn(i: int) -> list[Message]:
    return [Message.user(f"question {i}"), Message.assistant(f"answer {i}")]


async def _run(
    st: Any, session_id: str, run_id: str, *, increment: str | None = None, **state: Any
) -> None:
    rec = RunRecord(run_id, session_id, user_id="u1")
    ctx = await st.sessions.begin_run(rec, history=HistoryWindow(last_runs=3))
    ctx.state.update(state)
    if increment is not None:
        ctx.state.increment(increment)
    rec.status, rec.messages = "completed", _turn(0)
    await st.sessions.finish_run(rec, state=ctx.state)


async def test_state_changed_after_begin_run_is_merged_not_overwritten(storage: Any) -> None:
    await _run(storage, "s", "r0", keep=1, drop=1)
    rec = RunRecord("r1", "s", user_id="u1")
    ctx = await storage.sessions.begin_run(rec)
    # someone else changes the state while the run is going
    await storage.sessions.update_state("s", changes={"other": 2, "keep": 10}, user_id="u1")
    ctx.state["mine"] = 3
    del ctx.state["drop"]
    rec.status = "completed"
    changes, deletes = ctx.state_changes()
    state = await storage.sessions.finish_run(rec, state_changes=changes, state_deletes=deletes)
    assert state == {"keep": 10, "other": 2, "mine": 3}
    assert (await storage.sessions.get_session("s")).state == state
    # and the next run starts from the merged state and merges on it
    await _run(storage, "s", "r2", last=True)
    assert (await storage.sessions.get_session("s")).state == {**state, "last": True}


async def test_the_size_limit_is_checked_on_the_current_state(storage_factory: Any) -> None:
    st = storage_factory(max_state_bytes=300)
    await _run(st, "s", "r0", big="x" * 200)
    rec = RunRecord("r1", "s", user_id="u1")
    ctx = await st.sessions.begin_run(rec)
    # too large on the state begin_run read, fine once another run dropped "big"
    await st.sessions.update_state("s", deletes=["big"], user_id="u1")
    ctx.state["new"] = "y" * 200
    rec.status = "completed"
    changes, _ = ctx.state_changes()
    assert await st.sessions.finish_run(rec, state_changes=changes) == {"new": "y" * 200}
    # and still refused when the current state is what makes it too large
    rec2 = RunRecord("r2", "s", user_id="u1")
    await st.sessions.begin_run(rec2)
    rec2.status = "completed"
    with pytest.raises(StateTooLargeError):
        await st.sessions.finish_run(rec2, state_changes={"more": "z" * 200})
    assert (await st.sessions.get_session("s")).state == {"new": "y" * 200}
    assert (await st.sessions.get_run("r2")).status == "running"


async def test_a_run_id_of_another_session_writes_nothing(storage_factory: Any) -> None:
    st = storage_factory()
    await _run(st, "s", "taken", k=1)
    await _run(st, "other", "o1", k=1)
    before = await st.sessions.get_session("other")

    with pytest.raises(RunStateError):  # a new session: not created
        await st.sessions.begin_run(RunRecord("taken", "fresh", user_id="u1"))
    with pytest.raises(RunStateError):
        await st.sessions.start_run(RunRecord("taken", "fresh", user_id="u1"))
    assert await st.sessions.get_session("fresh") is None

    for changes in (None, {"k": 2}):  # an existing session: neither touched nor changed
        rec = RunRecord("taken", "other", user_id="u1", status="completed", messages=_turn(9))
        with pytest.raises(RunStateError):
            await st.sessions.finish_run(rec, state_changes=changes)
        with pytest.raises(RunStateError):
            await st.sessions.begin_run(RunRecord("taken", "other", user_id="u1"))
    after = await st.sessions.get_session("other")
    assert after.state == {"k": 1} and after.updated_at == before.updated_at
    rec = RunRecord("taken", "fresh2", user_id="u1", status="completed")
    with pytest.raises(RunStateError):
        await st.sessions.finish_run(rec, state_changes={"k": 2})
    assert await st.sessions.get_session("fresh2") is None

    run = await st.sessions.get_run("taken")
    assert run.session_id == "s" and run.status == "completed" and len(run.messages) == 2
    assert [r.run_id for r in await st.sessions.list_runs("other")] == ["o1"]


async def test_history_windows_with_running_and_incomplete_runs(storage: Any) -> None:
    await _run(storage, "s", "done")
    alive = RunRecord("alive", "s", user_id="u1", messages=_turn(1))
    await storage.sessions.start_run(alive, lease=600)
    dead = RunRecord("dead", "s", user_id="u1", messages=_turn(2))
    await storage.sessions.start_run(dead, lease=0.0)
    await asyncio.sleep(0.01)
    rec = RunRecord("now", "s", user_id="u1")
    window = HistoryWindow(statuses=("completed", "running", "incomplete"))
    ctx = await storage.sessions.begin_run(rec, history=window)
    assert ctx.history_run_ids == ["done", "alive", "dead"]
    assert [m.text for m in ctx.history] == ["question 0", "answer 0"] + [
        m.text for i in (1, 2) for m in _turn(i)
    ]
    ctx = await storage.sessions.load_context(
        "s", user_id="u1", history=HistoryWindow(statuses=("running",))
    )
    # "now" is running too but has no messages yet: it is in the window's range all the same
    assert [m.text for m in ctx.history] == ["question 1", "answer 1"]
    assert ctx.history_run_ids == ["alive", "now"]
    assert [r.run_id for r in await storage.sessions.list_runs("s", statuses=["running"])] == [
        "alive",
        "now",
    ]


# -- PostgreSQL: round trips per run ------------------------------------------------------------


class _RoundTripProxy:
    """A TCP proxy in front of PostgreSQL counting round trips: a client send that follows
    anything the server sent (or nothing yet) starts a new one."""

    def __init__(self, target: tuple[str, Any]) -> None:
        self.target = target
        self.round_trips = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        kind, where = self.target
        if kind == "unix":
            sr, sw = await asyncio.open_unix_connection(where)
        else:
            sr, sw = await asyncio.open_connection(*where)
        last = [""]

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, side: str) -> None:
            try:
                while data := await r.read(65536):
                    if side == "client" and last[0] != "client":
                        self.round_trips += 1
                    last[0] = side
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        await asyncio.gather(pump(cr, sw, "client"), pump(sr, cw, "server"))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def _target(url: str) -> tuple[tuple[str, Any], str]:
    """Where ``url``'s server listens, and the URL rewritten to go through 127.0.0.1:PORT."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    port = parts.port or int(query.get("port", ["5432"])[0])
    host = query.get("host", [parts.hostname or ""])[0]
    target: tuple[str, Any] = (
        ("unix", f"{host}/.s.PGSQL.{port}") if host.startswith("/") else ("tcp", (host, port))
    )
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k not in ("host", "port"))
    return target, f"{parts.scheme}://{auth}127.0.0.1:{{port}}{parts.path}" + (
        f"?{rest}" if rest else ""
    )


@pytest.fixture
async def counted_postgres(postgres_url: str) -> AsyncIterator[tuple[Any, _RoundTripProxy]]:
    from vivace.storage import PostgresStorage

    target, template = _target(postgres_url)
    proxy = _RoundTripProxy(target)
    await proxy.start()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    st = PostgresStorage(template.format(port=proxy.port), schema=schema)
    try:
        yield st, proxy
    finally:
        await st.run_sync(lambda c: c.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE'))
        await st.close()
        await proxy.close()


async def test_postgres_run_takes_two_round_trips(
    counted_postgres: tuple[Any, _RoundTripProxy],
) -> None:
    st, proxy = counted_postgres
    for i in range(4):  # warm-up: the connection, then each statement is prepared once
        await _run(st, "s", f"warm-{i}", **({f"w{i}": i} if i % 2 else {}))
    for state in ({}, {"k": 1}):
        before = proxy.round_trips
        for i in range(5):
            await _run(st, "s", f"r-{len(state)}-{i}", **{k: v + i for k, v in state.items()})
        assert proxy.round_trips - before == 2 * 5  # begin_run: 1, finish_run: 1
    before = proxy.round_trips
    for i in range(5):  # atomic updates too, uncontended
        await _run(st, "s", f"inc-{i}", increment="n")
    assert proxy.round_trips - before == 2 * 5
    ctx = await st.sessions.load_context("s", user_id="u1", history=HistoryWindow(last_runs=50))
    assert len(ctx.history) == 2 * 19 and ctx.state["k"] == 5 and ctx.state["n"] == 5


async def test_postgres_schema_beside_an_installation_in_public(postgres_url: str) -> None:
    """A storage in its own schema of a database whose ``public`` schema already holds
    Vivace's tables creates its own tables (and does not touch the others)."""
    import asyncpg
    import sqlalchemy as sa

    from vivace.storage import PostgresStorage

    base = sa.engine.make_url(postgres_url)
    admin = await asyncpg.connect(postgres_url)
    db = f"v_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{db}"')
    url = base.set(database=db).render_as_string(hide_password=False)
    try:
        public = PostgresStorage(url)
        await _run(public, "s", "in-public", where="public")
        mine = PostgresStorage(url, schema="mine")
        await _run(mine, "s", "in-mine", where="mine")
        assert (await mine.sessions.get_session("s")).state == {"where": "mine"}
        assert (await public.sessions.get_session("s")).state == {"where": "public"}
        assert [r.run_id for r in await public.sessions.list_runs("s")] == ["in-public"]
        await public.close()
        await mine.close()
    finally:
        await admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        await admin.close()
