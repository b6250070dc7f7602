"""What the Studio and ``vivace stats`` ask of stored traces, over any trace store.

:class:`TraceQueries` works on every backend's ``TraceStore`` (memory, SQLite, PostgreSQL)
by reading recent spans and filtering in Python (fine for a local store); a backend that can
push the queries down (ClickHouse) provides the same methods itself
(:class:`~vivace.observability.clickhouse.ClickHouseTraceStore`).
"""

from __future__ import annotations

from typing import Any

from . import genai as g
from .metrics import DAY, aggregate, span_view

__all__ = ["TraceQueries", "queries_for", "span_record_dict", "trace_summary", "tree_order"]


def span_record_dict(s: Any) -> dict[str, Any]:
    """A stored span as JSON for the Studio."""
    d = s.to_dict()
    end = s.end_time or s.start_time
    d["duration_ms"] = round((end - s.start_time) * 1000.0, 3)
    return d


def trace_summary(root: Any, spans: list[Any]) -> dict[str, Any]:
    """One row of the trace list: the root run and totals over the trace's model spans."""
    a = root.attributes or {}
    inp = out = 0
    cost = 0.0
    for s in spans:
        sa = s.attributes or {}
        if sa.get(g.SPAN_TYPE) == "model_request":
            inp += int(sa.get(g.INPUT_TOKENS) or 0)
            out += int(sa.get(g.OUTPUT_TOKENS) or 0)
            cost += float(sa.get(g.COST) or 0.0)
    v = span_view(root)
    return {
        "trace_id": root.trace_id,
        "name": root.name,
        "agent": a.get(g.AGENT_NAME),
        "workflow": a.get(g.WORKFLOW_NAME),
        "model": a.get(g.REQUEST_MODEL),
        "run_id": root.run_id,
        "session_id": root.session_id,
        "user_id": a.get(g.USER_ID),
        "status": a.get(g.RUN_STATUS) or ("failed" if v["error"] else "completed"),
        "error": v["error"],
        "start_time": root.start_time,
        "duration_ms": round(v["duration_ms"], 3),
        "spans": len(spans),
        "input_tokens": inp,
        "output_tokens": out,
        "cost_usd": round(cost, 10),
    }


def tree_order(spans: list[Any]) -> list[Any]:
    """Stored spans depth first: each parent before its children, siblings by start time (a
    run's span and its storage load start at the same instant)."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Any]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    out: list[Any] = []
    stack = sorted(children.get(None, []), key=lambda s: s.start_time, reverse=True)
    while stack:
        span = stack.pop()
        out.append(span)
        stack.extend(
            sorted(children.get(span.span_id, []), key=lambda s: s.start_time, reverse=True)
        )
    return out


class TraceQueries:
    """Trace list, one trace, and metrics over a trace store (``storage.traces``)."""

    def __init__(self, store: Any, *, scan_limit: int = 20_000) -> None:
        self.store = getattr(store, "traces", store)
        self.scan_limit = scan_limit
        # a backend that answers these itself (ClickHouse) gets them pushed down
        self.pushed_down = hasattr(self.store, "list_traces") and hasattr(self.store, "metrics")

    async def list_traces(
        self,
        *,
        agent: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first: one row per trace (its root span), filtered."""
        if self.pushed_down:
            return list(
                await self.store.list_traces(
                    agent=agent,
                    status=status,
                    since=since,
                    until=until,
                    session_id=session_id,
                    run_id=run_id,
                    limit=limit,
                )
            )
        if run_id is not None:
            spans = await self.store.list_spans(run_id=run_id, limit=self.scan_limit)
        elif session_id is not None:
            spans = await self.store.list_spans(session_id=session_id, limit=self.scan_limit)
        else:
            spans = await self.store.list_spans(limit=self.scan_limit)
        by_trace: dict[str, list[Any]] = {}
        for s in spans:
            by_trace.setdefault(s.trace_id, []).append(s)
        if run_id is not None or session_id is not None:  # only some spans matched: read all
            for trace_id in list(by_trace)[: max(limit, 1) * 4]:
                by_trace[trace_id] = list(await self.store.get_trace(trace_id))
        rows = []
        for trace_spans in by_trace.values():
            ids = {s.span_id for s in trace_spans}
            roots = [s for s in trace_spans if not s.parent_id or s.parent_id not in ids]
            root = min(roots, key=lambda s: s.start_time)
            row = trace_summary(root, trace_spans)
            if agent is not None and row["agent"] != agent:
                continue
            if status is not None and row["status"] != status:
                continue
            if since is not None and row["start_time"] < since:
                continue
            if until is not None and row["start_time"] >= until:
                continue
            rows.append(row)
        rows.sort(key=lambda r: r["start_time"], reverse=True)
        return rows[:limit]

    async def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's spans, parents before their children (depth first, by start time)."""
        return [span_record_dict(s) for s in tree_order(await self.store.get_trace(trace_id))]

    async def metrics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: float = DAY,
        agent: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows per time bucket x agent x model (see :func:`~.metrics.aggregate`)."""
        if self.pushed_down:
            return list(
                await self.store.metrics(since=since, until=until, bucket=bucket, agent=agent)
            )
        spans = await self.store.list_spans(limit=self.scan_limit)
        return aggregate(spans, bucket=bucket, since=since, until=until, agent=agent)


def queries_for(store: Any) -> TraceQueries:
    """:class:`TraceQueries` over a storage or trace store (pushed down when it can)."""
    return TraceQueries(store)
