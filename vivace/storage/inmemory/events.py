"""In-memory run events (the server's event log)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import _logic as L
from ..base import EventStore

__all__ = ["MemoryEvents"]


class MemoryEvents(EventStore):
    def __init__(self) -> None:
        # run_id -> {seq: (json text, created_at)}
        self._runs: dict[str, dict[int, tuple[str, float]]] = {}

    async def append(
        self, run_id: str, events: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        rows = L.event_rows(run_id, events, time.time())  # validate before changing anything
        if replace:
            self._runs.pop(run_id, None)
        stored = self._runs.setdefault(run_id, {})
        n = 0
        for r in rows:
            if r["seq"] not in stored:
                stored[r["seq"]] = (r["event"], r["created_at"])
                n += 1
        return n

    async def append_many(self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> int:
        now = time.time()
        checked = [(run_id, L.event_rows(run_id, events, now)) for run_id, events in batches]
        n = 0
        for run_id, rows in checked:
            stored = self._runs.setdefault(run_id, {}) if rows else self._runs.get(run_id, {})
            for r in rows:
                if r["seq"] not in stored:
                    stored[r["seq"]] = (r["event"], r["created_at"])
                    n += 1
        return n

    async def read(
        self, run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[dict[str, Any]]:
        L.check_id("run_id", run_id)
        stored = self._runs.get(run_id)
        if not stored:
            return []
        seqs = sorted(s for s in stored if s > after)[: max(limit, 0)]
        return [json.loads(stored[s][0]) for s in seqs]

    async def delete(self, run_id: str) -> int:
        L.check_id("run_id", run_id)
        stored = self._runs.pop(run_id, None)
        return len(stored) if stored else 0

    async def prune(self, before: float) -> int:
        n = 0
        for run_id in list(self._runs):
            stored = self._runs[run_id]
            old = [s for s, (_, at) in stored.items() if at < before]
            for s in old:
                del stored[s]
            n += len(old)
            if not stored:
                del self._runs[run_id]
        return n
