"""Write spans to a storage's traces domain (what the Studio's Traces screen reads)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..span import Span
from .base import Exporter

__all__ = ["StorageExporter", "span_to_record"]

_KINDS = {1: "internal", 2: "server", 3: "client"}
_STATUS = ("unset", "ok", "error")


def span_to_record(s: Span) -> Any:
    """A :class:`~vivace.storage.records.SpanRecord` for ``s``."""
    from ...storage.records import SpanRecord

    attrs = dict(s.attributes)
    if s.status_message:
        attrs["otel.status_description"] = s.status_message
    if s.events:
        attrs["vivace.events"] = [{"name": n, "time_ns": t, **a} for n, t, a in s.events]
    return SpanRecord(
        span_id=s.span_id,
        trace_id=s.trace_id,
        name=s.name,
        parent_id=s.parent_span_id,
        kind=_KINDS.get(s.kind, "internal"),
        start_time=s.start_ns / 1e9,
        end_time=s.end_ns / 1e9 if s.end_ns else None,
        status=_STATUS[s.status],
        run_id=attrs.get("vivace.run_id"),
        session_id=attrs.get("gen_ai.conversation.id"),
        attributes=attrs,
    )


class StorageExporter(Exporter):
    """Write spans to ``storage.traces`` (a :class:`~vivace.storage.Storage`, a trace store
    or a storage URL).

    Storage objects are bound to the event loop that uses them: the server calls
    :meth:`bind_loop` with its loop at startup, so writes run there; otherwise the exporter
    runs them on a private loop in its worker thread (fine for a storage of its own).
    """

    def __init__(self, storage: Any, *, timeout: float = 10.0) -> None:
        if isinstance(storage, str):
            from ...storage import shared_storage

            storage = shared_storage(storage)
        self.storage = storage
        self.traces = getattr(storage, "traces", storage)
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self._own: asyncio.AbstractEventLoop | None = None
        self._setup = False

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Run storage writes on ``loop`` (the loop that owns the storage)."""
        self.loop = loop

    async def _write(self, records: list[Any]) -> None:
        if not self._setup:
            setup = getattr(self.storage, "setup", None)
            if setup is not None:
                await setup()
            self._setup = True
        await self.traces.write_spans(records)

    def export(self, spans: Sequence[Span]) -> None:
        records = [span_to_record(s) for s in spans]
        loop = self.loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._write(records), loop).result(self.timeout)
            return
        own = self._own
        if own is None:
            own = self._own = asyncio.new_event_loop()
        own.run_until_complete(asyncio.wait_for(self._write(records), self.timeout))

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None
