"""In-memory trace spans."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import _logic as L
from .. import _spans
from .._json import dumps
from ..base import TraceStore
from ..records import SpanRecord, TraceMetricsRow, TraceSummary

__all__ = ["MemoryTraces"]


class MemoryTraces(TraceStore):
    def __init__(self) -> None:
        self._spans: dict[str, str] = {}

    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        for s in spans:
            L.check_span_ids(s)
        texts = [(s.span_id, dumps(s.to_dict(), "span")) for s in spans]
        self._spans.update(texts)

    def _all(self) -> list[SpanRecord]:
        return [SpanRecord.from_dict(json.loads(t)) for t in self._spans.values()]

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        L.check_id("trace_id", trace_id)
        spans = [s for s in self._all() if s.trace_id == trace_id]
        spans.sort(key=lambda s: s.start_time)
        return spans

    async def list_spans(
        self, *, run_id: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[SpanRecord]:
        L.check_opt_id("run_id", run_id)
        L.check_opt_id("session_id", session_id)
        spans = [
            s
            for s in self._all()
            if (run_id is None or s.run_id == run_id)
            and (session_id is None or s.session_id == session_id)
        ]
        spans.sort(key=lambda s: s.start_time, reverse=True)
        return spans[:limit]

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
        return _spans.list_traces_in(
            self._all(),
            agent=agent,
            model=model,
            workflow=workflow,
            status=status,
            user_id=user_id,
            session_id=session_id,
            run_id=run_id,
            since=since,
            until=until,
            limit=limit,
            before=before,
        )

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
        return _spans.aggregate(
            self._all(),
            bucket=bucket,
            since=since,
            until=until,
            agent=agent,
            model=model,
            workflow=workflow,
        )

    async def prune(self, before: float) -> int:
        old = [s.span_id for s in self._all() if s.start_time < before]
        for k in old:
            del self._spans[k]
        return len(old)
