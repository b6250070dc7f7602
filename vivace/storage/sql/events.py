"""SQL run events (the server's event log), with their table. Appends take the drivers' fast
lanes: one ``executemany`` in SQLite's worker thread, one statement on asyncpg."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .. import _logic as L
from ..base import EventStore
from ._engine import Engine, PostgresEngine, SQLiteEngine
from .schema import ID, Time, metadata

__all__ = ["SQLEvents", "run_events"]

run_events = sa.Table(  # v3
    "vivace_run_events",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_vivace_run_events_created", "created_at"),
    info={"since": 3},
)
_ev = run_events
_EVENT_CHUNK = 500  # rows per INSERT (4 bound parameters each: well under SQLite's limit)
_PG_EVENTS_INSERT = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) "
    "SELECT $1, t.seq, t.event, $4 FROM unnest($2::integer[], $3::text[]) AS t(seq, event) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)
_PG_EVENTS_INSERT_MANY = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) "
    "SELECT t.run_id, t.seq, t.event, $4 "
    "FROM unnest($1::text[], $2::integer[], $3::text[]) AS t(run_id, seq, event) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)
_LITE_EVENTS_INSERT = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)


class SQLEvents(EventStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def append(
        self, run_id: str, events: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        rows = L.event_rows(run_id, events, time.time())
        if not rows and not replace:
            return 0
        engine = self.engine
        if isinstance(engine, SQLiteEngine):
            params = [(r["run_id"], r["seq"], r["event"], r["created_at"]) for r in rows]

            def body(db: sqlite3.Connection) -> int:
                if replace:
                    db.execute(f"DELETE FROM {_ev.name} WHERE run_id = ?", (run_id,))
                cur = db.executemany(_LITE_EVENTS_INSERT, params)
                return max(int(cur.rowcount), 0)

            return await engine.raw_write(body)
        if isinstance(engine, PostgresEngine) and not replace:
            async with engine.driver() as conn:
                status = await conn.execute(
                    _PG_EVENTS_INSERT,
                    run_id,
                    [r["seq"] for r in rows],
                    [r["event"] for r in rows],
                    rows[0]["created_at"],
                )
            return int(str(status).rsplit(" ", 1)[-1] or 0)
        n = 0
        async with engine.tx(True) as conn:
            if replace:
                await conn.execute(sa.delete(_ev).where(_ev.c.run_id == run_id))
            for i in range(0, len(rows), _EVENT_CHUNK):
                stmt = (
                    engine.insert(_ev)
                    .values(rows[i : i + _EVENT_CHUNK])
                    .on_conflict_do_nothing(index_elements=[_ev.c.run_id, _ev.c.seq])
                )
                res = await conn.execute(stmt)
                n += max(int(res.rowcount or 0), 0)
        return n

    async def append_many(self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> int:
        """All the runs' events in one statement (PostgreSQL: one round trip) or one
        transaction (SQLite)."""
        now = time.time()
        rows = [r for run_id, events in batches for r in L.event_rows(run_id, events, now)]
        if not rows:
            return 0
        engine = self.engine
        if isinstance(engine, SQLiteEngine):
            params = [(r["run_id"], r["seq"], r["event"], r["created_at"]) for r in rows]

            def body(db: sqlite3.Connection) -> int:
                return max(int(db.executemany(_LITE_EVENTS_INSERT, params).rowcount), 0)

            return await engine.raw_write(body)
        if isinstance(engine, PostgresEngine):
            async with engine.driver() as conn:
                status = await conn.execute(
                    _PG_EVENTS_INSERT_MANY,
                    [r["run_id"] for r in rows],
                    [r["seq"] for r in rows],
                    [r["event"] for r in rows],
                    now,
                )
            return int(str(status).rsplit(" ", 1)[-1] or 0)
        return await super().append_many(batches)

    async def read(
        self, run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[dict[str, Any]]:
        L.check_id("run_id", run_id)
        q = (
            sa.select(_ev.c.event)
            .where(_ev.c.run_id == run_id, _ev.c.seq > after)
            .order_by(_ev.c.seq)
            .limit(max(limit, 0))
        )
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [json.loads(r[0]) for r in rows]

    async def delete(self, run_id: str) -> int:
        L.check_id("run_id", run_id)
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_ev).where(_ev.c.run_id == run_id))
        return int(res.rowcount or 0)

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_ev).where(_ev.c.created_at < before))
        return int(res.rowcount or 0)
