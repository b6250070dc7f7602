"""SQL trace spans, with their table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .. import _logic as L
from .._json import dumps
from ..base import TraceStore
from ..records import SpanRecord
from ._engine import Engine
from .schema import ID, Time, metadata

__all__ = ["SQLTraces", "spans"]

spans = sa.Table(
    "vivace_spans",
    metadata,
    sa.Column("span_id", ID, primary_key=True),
    sa.Column("trace_id", ID, nullable=False),
    sa.Column("parent_id", ID),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(64)),
    sa.Column("start_time", Time, nullable=False),
    sa.Column("end_time", Time),
    sa.Column("status", sa.String(32)),
    sa.Column("run_id", ID),
    sa.Column("session_id", ID),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Index("ix_vivace_spans_trace", "trace_id", "start_time"),
    sa.Index("ix_vivace_spans_run", "run_id"),
    sa.Index("ix_vivace_spans_start", "start_time"),
    info={"since": 1},
)
_sp = spans


class SQLTraces(TraceStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        if not spans:
            return
        rows = []
        for s in spans:
            L.check_span_ids(s)
            d = s.to_dict()
            d["attributes"] = dumps(d["attributes"], "span attributes")
            rows.append(d)
        ins = self.engine.insert(_sp)
        stmt = ins.on_conflict_do_update(
            index_elements=[_sp.c.span_id],
            set_={k: ins.excluded[k] for k in rows[0] if k != "span_id"},
        )
        async with self.engine.tx(True) as conn:
            await conn.execute(stmt, rows)

    @staticmethod
    def _from(m: Any) -> SpanRecord:
        d = dict(m)
        d["attributes"] = json.loads(d["attributes"])
        return SpanRecord.from_dict(d)

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        L.check_id("trace_id", trace_id)
        async with self.engine.tx(False) as conn:
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
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("session_id", session_id)
        q = sa.select(_sp)
        if run_id is not None:
            q = q.where(_sp.c.run_id == run_id)
        if session_id is not None:
            q = q.where(_sp.c.session_id == session_id)
        q = q.order_by(_sp.c.start_time.desc()).limit(limit)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [self._from(r._mapping) for r in rows]

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_sp).where(_sp.c.start_time < before))
        return int(res.rowcount or 0)
