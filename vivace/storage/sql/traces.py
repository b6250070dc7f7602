"""SQL trace spans, with their table.

Besides the span itself, each row keeps the facts the trace queries filter and add up
(:func:`vivace.storage._spans.facts`: agent, model, root, tokens, cost...), so the trace list
and the metrics are answered by indexed SQL; only the latency percentiles are computed in
Python, from the durations the query returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .. import _logic as L
from .. import _spans
from .._json import dumps
from ..base import TraceStore
from ..records import SpanRecord, TraceMetricsRow, TraceSummary
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
    # the facts the queries read (schema 5)
    sa.Column("agent", ID),
    sa.Column("model", ID),
    sa.Column("workflow", ID),
    sa.Column("user_id", ID),
    sa.Column("span_type", sa.String(64)),
    sa.Column("run_status", sa.String(32)),
    sa.Column("error", sa.Boolean),
    sa.Column("is_root", sa.Boolean),
    sa.Column("duration_ms", sa.Float(precision=53)),
    sa.Column("input_tokens", sa.BigInteger),
    sa.Column("output_tokens", sa.BigInteger),
    sa.Column("cached_tokens", sa.BigInteger),
    sa.Column("reasoning_tokens", sa.BigInteger),
    sa.Column("cost_usd", sa.Float(precision=53)),
    sa.Index("ix_vivace_spans_trace", "trace_id", "start_time"),
    sa.Index("ix_vivace_spans_run", "run_id"),
    sa.Index("ix_vivace_spans_start", "start_time"),
    sa.Index("ix_vivace_spans_root", "is_root", "start_time", info={"since": 5}),
    sa.Index("ix_vivace_spans_session", "session_id", info={"since": 5}),
    info={"since": 1},
)
_sp = spans
_SUMMARY = (
    _sp.c.trace_id,
    _sp.c.span_id,
    _sp.c.name,
    _sp.c.start_time,
    _sp.c.duration_ms,
    _sp.c.status,
    _sp.c.run_status,
    _sp.c.error,
    _sp.c.agent,
    _sp.c.workflow,
    _sp.c.model,
    _sp.c.run_id,
    _sp.c.session_id,
    _sp.c.user_id,
)


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
            d.update(_spans.facts(s).columns())
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
        return SpanRecord(
            span_id=m["span_id"],
            trace_id=m["trace_id"],
            name=m["name"],
            parent_id=m["parent_id"],
            kind=m["kind"],
            start_time=m["start_time"],
            end_time=m["end_time"],
            status=m["status"],
            run_id=m["run_id"],
            session_id=m["session_id"],
            attributes=json.loads(m["attributes"]),
        )

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

    async def list_traces(
        self,
        *,
        agent: str | None = None,
        model: str | None = None,
        workflow: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[TraceSummary]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("session_id", session_id)
        root = _sp
        other = _sp.alias("earlier_root")
        # the trace's root: the earliest span without a parent in this process
        earliest = ~sa.exists().where(
            other.c.trace_id == root.c.trace_id,
            other.c.is_root.is_(True),
            sa.or_(
                other.c.start_time < root.c.start_time,
                sa.and_(other.c.start_time == root.c.start_time, other.c.span_id < root.c.span_id),
            ),
        )
        q = sa.select(*_SUMMARY).where(root.c.is_root.is_(True), earliest)
        for col, value in (
            (root.c.agent, agent),
            (root.c.model, model),
            (root.c.workflow, workflow),
            (root.c.user_id, user_id),
        ):
            if value is not None:
                q = q.where(col == value)
        if status is not None:
            derived = sa.case((root.c.error.is_(True), "failed"), else_="completed")
            q = q.where(sa.func.coalesce(root.c.run_status, derived) == status)
        if since is not None:
            q = q.where(root.c.start_time >= since)
        if until is not None:
            q = q.where(root.c.start_time < until)
        for col, value in ((_sp.c.session_id, session_id), (_sp.c.run_id, run_id)):
            if value is not None:
                inner = _sp.alias("member")
                member = getattr(inner.c, col.name)
                q = q.where(root.c.trace_id.in_(sa.select(inner.c.trace_id).where(member == value)))
        if before is not None:
            t, trace_id = before
            q = q.where(
                sa.or_(
                    root.c.start_time < t,
                    sa.and_(root.c.start_time == t, root.c.trace_id < trace_id),
                )
            )
        q = q.order_by(root.c.start_time.desc(), root.c.trace_id.desc()).limit(limit)
        async with self.engine.tx(False) as conn:
            roots = [r._mapping for r in (await conn.execute(q)).all()]
            if not roots:
                return []
            model_request = _sp.c.span_type == "model_request"

            def total(col: Any) -> Any:
                return sa.func.coalesce(sa.func.sum(sa.case((model_request, col), else_=0)), 0)

            totals_q = (
                sa.select(
                    _sp.c.trace_id,
                    sa.func.count().label("n"),
                    total(_sp.c.input_tokens).label("inp"),
                    total(_sp.c.output_tokens).label("out"),
                    total(_sp.c.cost_usd).label("cost"),
                )
                .where(_sp.c.trace_id.in_([r["trace_id"] for r in roots]))
                .group_by(_sp.c.trace_id)
            )
            totals = {r.trace_id: r for r in (await conn.execute(totals_q)).all()}
        out = []
        for r in roots:
            t = totals[r["trace_id"]]
            error = bool(r["error"])
            out.append(
                TraceSummary(
                    trace_id=r["trace_id"],
                    name=r["name"],
                    start_time=r["start_time"],
                    duration_ms=float(r["duration_ms"] or 0.0),
                    status=_spans.trace_status(r["run_status"], error),
                    error=error,
                    agent=r["agent"],
                    workflow=r["workflow"],
                    model=r["model"],
                    run_id=r["run_id"],
                    session_id=r["session_id"],
                    user_id=r["user_id"],
                    spans=int(t.n),
                    input_tokens=int(t.inp),
                    output_tokens=int(t.out),
                    cost_usd=float(t.cost),
                )
            )
        return out

    async def trace_metrics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: float = 86400.0,
        agent: str | None = None,
        model: str | None = None,
        workflow: str | None = None,
    ) -> list[TraceMetricsRow]:
        q = sa.select(
            _sp.c.start_time,
            _sp.c.agent,
            _sp.c.model,
            _sp.c.workflow,
            _sp.c.span_type,
            _sp.c.error,
            _sp.c.duration_ms,
            _sp.c.input_tokens,
            _sp.c.output_tokens,
            _sp.c.cached_tokens,
            _sp.c.reasoning_tokens,
            _sp.c.cost_usd,
        ).where(_sp.c.span_type.in_(_spans.COUNTED_TYPES))
        if since is not None:
            q = q.where(_sp.c.start_time >= since)
        if until is not None:
            q = q.where(_sp.c.start_time < until)
        for col, value in ((_sp.c.agent, agent), (_sp.c.model, model), (_sp.c.workflow, workflow)):
            if value is not None:
                q = q.where(col == value)
        acc = _spans.MetricsAccumulator(bucket)
        async with self.engine.tx(False) as conn:
            for r in (await conn.execute(q)).all():
                acc.add(
                    r.start_time,
                    _spans.SpanFacts(
                        agent=r.agent,
                        model=r.model,
                        workflow=r.workflow,
                        user_id=None,
                        span_type=r.span_type,
                        run_status=None,
                        error=bool(r.error),
                        root=False,
                        duration_ms=float(r.duration_ms or 0.0),
                        input_tokens=int(r.input_tokens or 0),
                        output_tokens=int(r.output_tokens or 0),
                        cached_tokens=int(r.cached_tokens or 0),
                        reasoning_tokens=int(r.reasoning_tokens or 0),
                        cost_usd=float(r.cost_usd or 0.0),
                    ),
                )
        return acc.result()

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.delete(_sp).where(_sp.c.start_time < before))
        return int(res.rowcount or 0)
