"""In-memory trace spans."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import _logic as L
from .._json import dumps
from ..base import TraceStore
from ..records import SpanRecord

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

    async def prune(self, before: float) -> int:
        old = [s.span_id for s in self._all() if s.start_time < before]
        for k in old:
            del self._spans[k]
        return len(old)
