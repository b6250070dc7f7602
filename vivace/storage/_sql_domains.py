"""SQL workflow snapshots, trace spans, scores and run events."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import _logic as L
from . import schema as S
from .base import EventStore, ScoreStore, TraceStore, WorkflowStore
from .records import ScoreRecord, SpanRecord, WorkflowSnapshot

if TYPE_CHECKING:
    from .sql import SQLStorage


# -- workflows, traces, scores ---------------------------------------------------------------

_wf = S.workflow_snapshots
_sp = S.spans
_sc = S.scores


class _SQLWorkflows(WorkflowStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def save_snapshot(self, snapshot: WorkflowSnapshot) -> None:
        now = time.time()
        ins = self._o._insert(_wf).values(
            workflow=snapshot.workflow,
            run_id=snapshot.run_id,
            status=snapshot.status,
            snapshot=L.dumps(snapshot.snapshot, "workflow snapshot"),
            created_at=snapshot.created_at,
            updated_at=now,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[_wf.c.workflow, _wf.c.run_id],
            set_={k: ins.excluded[k] for k in ("status", "snapshot", "updated_at")},
        )
        async with self._o._tx(True) as conn:
            await conn.execute(stmt)

    @staticmethod
    def _from(m: Any) -> WorkflowSnapshot:
        return WorkflowSnapshot(
            m["workflow"],
            m["run_id"],
            json.loads(m["snapshot"]),
            m["status"],
            m["created_at"],
            m["updated_at"],
        )

    async def load_snapshot(self, workflow: str, run_id: str) -> WorkflowSnapshot | None:
        async with self._o._tx(False) as conn:
            row = (
                await conn.execute(
                    sa.select(_wf).where(_wf.c.workflow == workflow, _wf.c.run_id == run_id)
                )
            ).first()
        return self._from(row._mapping) if row is not None else None

    async def list_snapshots(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[WorkflowSnapshot]:
        q = sa.select(_wf)
        if workflow is not None:
            q = q.where(_wf.c.workflow == workflow)
        if status is not None:
            q = q.where(_wf.c.status == status)
        q = q.order_by(_wf.c.updated_at.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [self._from(r._mapping) for r in rows]

    async def delete_snapshot(self, workflow: str, run_id: str) -> bool:
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.delete(_wf).where(_wf.c.workflow == workflow, _wf.c.run_id == run_id)
            )
        return bool(res.rowcount)

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_wf).where(_wf.c.updated_at < before))
        return int(res.rowcount or 0)


class _SQLTraces(TraceStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        if not spans:
            return
        rows = []
        for s in spans:
            d = s.to_dict()
            d["attributes"] = L.dumps(d["attributes"], "span attributes")
            rows.append(d)
        ins = self._o._insert(_sp)
        stmt = ins.on_conflict_do_update(
            index_elements=[_sp.c.span_id],
            set_={k: ins.excluded[k] for k in rows[0] if k != "span_id"},
        )
        async with self._o._tx(True) as conn:
            await conn.execute(stmt, rows)

    @staticmethod
    def _from(m: Any) -> SpanRecord:
        d = dict(m)
        d["attributes"] = json.loads(d["attributes"])
        return SpanRecord.from_dict(d)

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        async with self._o._tx(False) as conn:
            rows = (
                await conn.execute(
                    sa.select(_sp)
                    .where(_sp.c.trace_id == trace_id)
                    .order_by(_sp.c.start_time, _sp.c.span_id)
                )
            ).all()
        return [self._from(r._mapping) for r in rows]

    async def list_spans(
        self, *, run_id: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[SpanRecord]:
        q = sa.select(_sp)
        if run_id is not None:
            q = q.where(_sp.c.run_id == run_id)
        if session_id is not None:
            q = q.where(_sp.c.session_id == session_id)
        q = q.order_by(_sp.c.start_time.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [self._from(r._mapping) for r in rows]

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_sp).where(_sp.c.start_time < before))
        return int(res.rowcount or 0)


class _SQLScores(ScoreStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def add_score(self, score: ScoreRecord) -> None:
        d = score.to_dict()
        d["metadata"] = L.dumps(d["metadata"], "score metadata")
        async with self._o._tx(True) as conn:
            await conn.execute(sa.insert(_sc).values(**d))

    async def list_scores(
        self,
        *,
        run_id: str | None = None,
        trace_id: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[ScoreRecord]:
        q = sa.select(_sc)
        if run_id is not None:
            q = q.where(_sc.c.run_id == run_id)
        if trace_id is not None:
            q = q.where(_sc.c.trace_id == trace_id)
        if scorer is not None:
            q = q.where(_sc.c.scorer == scorer)
        q = q.order_by(_sc.c.created_at.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            d["metadata"] = json.loads(d["metadata"])
            out.append(ScoreRecord.from_dict(d))
        return out

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_sc).where(_sc.c.created_at < before))
        return int(res.rowcount or 0)


# -- run events ----------------------------------------------------------------------------------

_ev = S.run_events
_EVENT_CHUNK = 500  # rows per INSERT (4 bound parameters each: well under SQLite's limit)
_PG_EVENTS_INSERT = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) "
    "SELECT $1, t.seq, t.event, $4 FROM unnest($2::integer[], $3::text[]) AS t(seq, event) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)
_LITE_EVENTS_INSERT = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)


class _SQLEvents(EventStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def append(
        self, run_id: str, events: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        rows = L.event_rows(run_id, events, time.time())
        if not rows and not replace:
            return 0
        sessions = self._o.sessions
        # fast paths on the driver connections the seam uses: one hop / one round trip
        if self._o.dialect_name == "sqlite" and hasattr(sessions, "_hot_write"):
            return await self._append_sqlite(sessions, run_id, rows, replace)
        if self._o.dialect_name == "postgresql" and not replace and hasattr(sessions, "_driver"):
            async with sessions._driver() as conn:
                status = await conn.execute(
                    _PG_EVENTS_INSERT,
                    run_id,
                    [r["seq"] for r in rows],
                    [r["event"] for r in rows],
                    rows[0]["created_at"],
                )
            return int(str(status).rsplit(" ", 1)[-1] or 0)
        n = 0
        async with self._o._tx(True) as conn:
            if replace:
                await conn.execute(sa.delete(_ev).where(_ev.c.run_id == run_id))
            for i in range(0, len(rows), _EVENT_CHUNK):
                stmt = (
                    self._o._insert(_ev)
                    .values(rows[i : i + _EVENT_CHUNK])
                    .on_conflict_do_nothing(index_elements=[_ev.c.run_id, _ev.c.seq])
                )
                res = await conn.execute(stmt)
                n += max(int(res.rowcount or 0), 0)
        return n

    @staticmethod
    async def _append_sqlite(
        sessions: Any, run_id: str, rows: list[dict[str, Any]], replace: bool
    ) -> int:
        params = [(r["run_id"], r["seq"], r["event"], r["created_at"]) for r in rows]

        def body(db: Any) -> int:
            if replace:
                db.execute(f"DELETE FROM {_ev.name} WHERE run_id = ?", (run_id,))
            cur = db.executemany(_LITE_EVENTS_INSERT, params)
            return max(int(cur.rowcount), 0)

        return int(await sessions._hot_write(body))

    async def read(
        self, run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = (
            sa.select(_ev.c.event)
            .where(_ev.c.run_id == run_id, _ev.c.seq > after)
            .order_by(_ev.c.seq)
            .limit(max(limit, 0))
        )
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [json.loads(r[0]) for r in rows]

    async def delete(self, run_id: str) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_ev).where(_ev.c.run_id == run_id))
        return int(res.rowcount or 0)

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_ev).where(_ev.c.created_at < before))
        return int(res.rowcount or 0)
