"""The exporter interface, and an in-memory exporter for tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..span import Span

__all__ = ["Exporter", "InMemoryExporter"]


class Exporter:
    """Receives batches of ended spans, in a worker thread (blocking I/O is fine here)."""

    def export(self, spans: Sequence[Span]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (called once at shutdown)."""


class InMemoryExporter(Exporter):
    """Keeps every exported span in ``spans`` (for tests and examples)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Span]) -> None:
        with self._lock:
            self.spans.extend(spans)

    def by_name(self, prefix: str) -> list[Span]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
