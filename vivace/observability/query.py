"""What the Studio and ``vivace stats`` ask of stored traces, as JSON.

Every trace store answers the queries itself (``storage.traces.list_traces``,
``trace_metrics``, ``get_trace``): pushed down to SQL on SQLite and PostgreSQL and to
ClickHouse (:class:`~vivace.storage.ClickHouseStorage`), in Python in memory.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TraceQueries", "queries_for", "span_record_dict", "tree_order"]

DAY = 86400.0


def span_record_dict(s: Any) -> dict[str, Any]:
    """A stored span as JSON for the Studio."""
    d = s.to_dict()
    end = s.end_time or s.start_time
    d["duration_ms"] = round((end - s.start_time) * 1000.0, 3)
    return d


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
        kids = children.get(span.span_id, [])
        stack.extend(sorted(kids, key=lambda s: s.start_time, reverse=True))
    return out


def encode_cursor(cursor: tuple[float, str]) -> str:
    """A page cursor as text (``start_time`` ``_`` ``trace_id``)."""
    return f"{cursor[0]!r}_{cursor[1]}"


def decode_cursor(text: str) -> tuple[float, str]:
    """The cursor :func:`encode_cursor` made; ``ValueError`` for anything else."""
    t, sep, trace_id = text.partition("_")
    if not sep or not trace_id:
        raise ValueError(text)
    return float(t), trace_id


class TraceQueries:
    """The trace list (paged), one trace, and metrics over a storage's traces domain."""

    def __init__(self, store: Any) -> None:
        self.store = getattr(store, "traces", store)

    async def list_traces(
        self, *, limit: int = 50, cursor: str | None = None, **filters: Any
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Rows newest first and the cursor of the next page (None: no more)."""
        before = decode_cursor(cursor) if cursor else None
        rows = await self.store.list_traces(limit=limit + 1, before=before, **filters)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].cursor) if more and rows else None
        return [r.to_dict() for r in rows], next_cursor

    async def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The trace's spans, parents before their children (depth first, by start time)."""
        return [span_record_dict(s) for s in tree_order(await self.store.get_trace(trace_id))]

    async def run_spans(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The spans of one run (not those of runs it started), parents first."""
        spans = await self.store.list_spans(run_id=run_id, limit=limit)
        return [span_record_dict(s) for s in tree_order(spans)]

    async def metrics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: float = DAY,
        agent: str | None = None,
        model: str | None = None,
        workflow: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows per time bucket x agent x model x workflow (``TraceMetricsRow.to_dict``)."""
        rows = await self.store.trace_metrics(
            since=since, until=until, bucket=bucket, agent=agent, model=model, workflow=workflow
        )
        return [r.to_dict() for r in rows]


def queries_for(store: Any) -> TraceQueries:
    """:class:`TraceQueries` over a storage or a trace store."""
    return TraceQueries(store)
