"""The run events domain (``storage.events``) on every backend, and the 2 -> 3 migration."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vivace.errors import UserError
from vivace.storage import CompositeStorage, InMemoryStorage
from vivace.storage.sql import history, schema


def ev(seq: int, type_: str = "text_delta", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "run_id": "r", "seq": seq, **fields}


async def test_append_and_read_in_order(storage: Any) -> None:
    assert await storage.events.read("r") == []
    assert await storage.events.append("r", [ev(0, "run_started"), ev(1, text="héllo")]) == 2
    assert await storage.events.append("r", [ev(2, text="x"), ev(3, "run_completed")]) == 2
    await storage.events.append("other", [ev(0), ev(1)])
    got = await storage.events.read("r")
    assert [e["seq"] for e in got] == [0, 1, 2, 3]
    assert got[1] == ev(1, text="héllo")
    assert [e["seq"] for e in await storage.events.read("r", after=1)] == [2, 3]
    assert [e["seq"] for e in await storage.events.read("r", after=0, limit=2)] == [1, 2]
    assert await storage.events.read("r", after=3) == []
    assert await storage.events.read("nope") == []


async def test_append_many_stores_several_runs_at_once(storage: Any) -> None:
    await storage.events.append("a", [ev(0, "run_started")])
    n = await storage.events.append_many(
        [
            ("a", [ev(0, "run_started"), ev(1, text="a1")]),  # seq 0 already stored: skipped
            ("b", [ev(0, "run_started"), ev(1, "run_completed")]),
            ("c", []),
        ]
    )
    assert n == 3
    assert [e["seq"] for e in await storage.events.read("a")] == [0, 1]
    assert [e["type"] for e in await storage.events.read("b")] == ["run_started", "run_completed"]
    assert await storage.events.read("c") == []
    assert await storage.events.append_many([]) == 0
    with pytest.raises(UserError):  # a bad event writes nothing
        await storage.events.append_many([("d", [ev(0)]), ("e", [{"type": "x", "seq": -1}])])
    assert await storage.events.read("d") == []


async def test_duplicates_are_ignored_idempotently(storage: Any) -> None:
    await storage.events.append("r", [ev(0, text="first"), ev(1, text="first")])
    # a retried batch overlapping what is stored: only the new event is written
    assert await storage.events.append("r", [ev(1, text="second"), ev(2, text="second")]) == 1
    got = await storage.events.read("r")
    assert [(e["seq"], e["text"]) for e in got] == [(0, "first"), (1, "first"), (2, "second")]


async def test_replace_starts_a_new_segment(storage: Any) -> None:
    await storage.events.append("r", [ev(0), ev(1), ev(2)])
    assert await storage.events.append("r", [ev(0, "run_resumed")], replace=True) == 1
    got = await storage.events.read("r")
    assert [(e["seq"], e["type"]) for e in got] == [(0, "run_resumed")]
    assert await storage.events.delete("r") == 1
    assert await storage.events.read("r") == []


async def test_events_without_a_seq_are_rejected(storage: Any) -> None:
    with pytest.raises(UserError):
        await storage.events.append("r", [ev(0), {"type": "text_delta"}])
    assert await storage.events.read("r") == []  # nothing of the batch was written


async def test_prune_drops_old_events(storage: Any) -> None:
    await storage.events.append("r", [ev(0), ev(1)])
    assert await storage.prune({"events": timedelta(hours=1)}) == {"events": 0}
    assert len(await storage.events.read("r")) == 2
    time.sleep(0.01)
    assert await storage.prune({"events": 0.0}) == {"events": 2}
    assert await storage.events.read("r") == []


async def test_composite_routes_events() -> None:
    a, b = InMemoryStorage(), InMemoryStorage()
    st = CompositeStorage(a, events=b)
    await st.events.append("r", [ev(0)])
    assert await b.events.read("r") == [ev(0)]
    assert await a.events.read("r") == []


async def test_a_version_2_database_is_upgraded(sql_factory: Any) -> None:
    st = sql_factory()

    def build(conn: sa.Connection) -> None:
        if sql_factory.kind == "postgres":
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{sql_factory.schema}"')
        history.create_v2_schema(conn)
        conn.execute(
            sa.text(
                "INSERT INTO vivace_sessions (session_id, agent_id, user_id, name, state, "
                "metadata, created_at, updated_at) VALUES ('old', 'a', 'u1', 'Old', '{}', '{}', 1, 2)"
            )
        )

    await st.run_sync(build, setup=False)

    def tables(conn: sa.Connection) -> set[str]:
        return set(sa.inspect(conn).get_table_names())

    assert "vivace_run_events" not in await st.run_sync(tables, setup=False)
    await st.close()

    st = sql_factory()
    assert (await st.sessions.get_session("old")).name == "Old"  # data kept
    assert await st.schema_version() == schema.SCHEMA_VERSION
    assert "vivace_run_events" in await st.run_sync(tables)
    await st.events.append("r", [ev(0), ev(1)])
    assert [e["seq"] for e in await st.events.read("r", after=0)] == [1]

    # the upgraded database has the same columns as a fresh one
    fresh_factory = type(sql_factory)(
        sql_factory.kind, Path(sql_factory.path).parent / "fresh3", sql_factory._request
    )
    Path(fresh_factory.path).parent.mkdir(exist_ok=True)
    fresh = fresh_factory()
    try:
        await fresh.setup()

        def cols(conn: sa.Connection) -> dict[str, set[str]]:
            import warnings

            warnings.simplefilter("ignore", sa.exc.SAWarning)
            insp = sa.inspect(conn)
            return {
                t: {c["name"] for c in insp.get_columns(t)}
                for t in insp.get_table_names()
                if t.startswith("vivace_")
            }

        assert await st.run_sync(cols) == await fresh.run_sync(cols)
    finally:
        await fresh_factory.aclose()
