"""The :class:`Tracer`: makes spans, samples traces, and hands ended spans to exporters.

One tracer is active per process at most (:func:`vivace.observability.configure` sets it).
Lower layers (model attempts, MCP, memory, storage) report through :mod:`vivace.trace_hook`,
which is ``None`` while tracing is off, so tracing costs nothing when off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .batch import BatchProcessor
from .redact import Redactor
from .span import ERROR, OK, Span, SpanKind, new_span_id

if TYPE_CHECKING:
    from .exporters.base import Exporter

__all__ = ["ACTIVE", "CURRENT_SPAN", "Tracer", "current_span"]

ACTIVE: Tracer | None = None
"""The process's active tracer (None: tracing is off)."""

CURRENT_SPAN: ContextVar[Span | None] = ContextVar("vivace_current_span", default=None)
"""The span code runs in now (set by :meth:`Tracer.span`); new spans nest under it."""

_MAX_PENDING_TRACES = 10_000


def current_span() -> Span | None:
    """The innermost open span of the calling code (an explicit span, the tool call running
    now or the run), or None."""
    from .hook import innermost

    return innermost(ACTIVE)[1]


class _Pending:
    __slots__ = ("error", "spans")

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.error = False


class Tracer:
    """Make spans and send the sampled ones to exporters, each through its own
    :class:`~vivace.observability.batch.BatchProcessor`.

    Args:
        exporters: Where spans go (:class:`~vivace.observability.OTLPExporter`,
            :class:`~vivace.observability.ConsoleExporter`,
            :class:`~vivace.observability.StorageExporter`...).
        sample_ratio: Share of traces kept (0..1), decided from the trace id so every
            process of a distributed trace decides alike.
        sample_errors: Keep every trace with an error, whatever the ratio (its spans wait in
            memory until the trace's local root ends).
        capture_content: Record prompts, completions, system instructions and tool
            arguments/results (redacted, truncated to ``max_content_chars``). Off by default.
        secrets: Literal values never to export (environment variables that look like keys
            are added automatically).
        max_queue, batch_size, delay: Per-exporter batching (see ``BatchProcessor``).
    """

    def __init__(
        self,
        exporters: Sequence[Exporter] = (),
        *,
        sample_ratio: float = 1.0,
        sample_errors: bool = True,
        capture_content: bool = False,
        max_content_chars: int = 8192,
        secrets: Sequence[str] = (),
        max_queue: int = 2048,
        batch_size: int = 512,
        delay: float = 0.5,
    ) -> None:
        if not 0.0 <= sample_ratio <= 1.0:
            from ..errors import UserError

            raise UserError("sample_ratio must be between 0 and 1")
        self.processors = [
            BatchProcessor(e, max_queue=max_queue, batch_size=batch_size, delay=delay)
            for e in exporters
        ]
        self.sample_ratio = sample_ratio
        self._threshold = int(sample_ratio * (1 << 64))
        self.sample_errors = sample_errors
        self.capture_content = capture_content
        self.max_content_chars = max_content_chars
        self.redactor = Redactor(secrets)
        self._pending: dict[str, _Pending] = {}
        self._runs: dict[str, Any] = {}  # run_id -> the capability's per-run spans
        self._early: dict[str, int] = {}  # span id -> start of a child that came first
        self.ended = 0

    # -- sampling ------------------------------------------------------------------------------

    def sampled(self, trace_id: str) -> bool:
        if self._threshold >= 1 << 64:
            return True
        if self._threshold == 0:
            return False
        try:
            return int(trace_id[16:], 16) < self._threshold
        except ValueError:
            return True

    # -- spans ---------------------------------------------------------------------------------

    def start_span(
        self,
        name: str,
        trace_id: str,
        parent: Span | str | None = None,
        *,
        kind: int = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        span_id: str | None = None,
        start_ns: int = 0,
    ) -> Span:
        """A new open span; end it with :meth:`end_span`."""
        parent_id = parent.span_id if isinstance(parent, Span) else parent
        return Span(name, trace_id, span_id or new_span_id(), parent_id, kind, attributes, start_ns)

    def pending_start(self, span_id: str, start_ns: int) -> None:
        """Span ``span_id`` (a run's, not open yet) starts no later than ``start_ns``: its
        first child (the run's storage load) came before it."""
        early = self._early
        if span_id not in early:
            if len(early) >= _MAX_PENDING_TRACES:
                early.pop(next(iter(early)))
            early[span_id] = start_ns

    def take_start(self, span_id: str | None) -> int:
        """The start recorded by :meth:`pending_start` for ``span_id`` (0: none)."""
        return self._early.pop(span_id, 0) if span_id is not None and self._early else 0

    def end_span(self, span: Span, *, root: bool = False, end_ns: int = 0) -> None:
        """End ``span`` and queue it for export (if its trace is sampled). ``root``: the
        trace's local root ended (an unsampled trace with an error is exported now)."""
        if span.end_ns:
            return
        span.end_ns = end_ns or time.time_ns()
        if span.status == 0 and not span.status_message:
            span.status = OK
        self.ended += 1
        trace_id = span.trace_id
        if self._threshold >= 1 << 64 or self.sampled(trace_id):
            for p in self.processors:
                p.on_end(span)
            return
        if not self.sample_errors:
            return
        pending = self._pending.get(trace_id)
        if pending is None:
            if len(self._pending) >= _MAX_PENDING_TRACES:
                self._pending.pop(next(iter(self._pending)))
            pending = self._pending[trace_id] = _Pending()
        pending.spans.append(span)
        if span.status == ERROR:
            pending.error = True
        if root:
            del self._pending[trace_id]
            if pending.error:
                for s in pending.spans:
                    for p in self.processors:
                        p.on_end(s)

    def record_error(
        self, span: Span, exc: BaseException | str, error_type: str | None = None
    ) -> None:
        """Mark ``span`` failed with a redacted message."""
        if isinstance(exc, BaseException):
            code = getattr(exc, "code", None)
            error_type = error_type or (code if isinstance(code, str) else type(exc).__name__)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        else:
            message = exc
        span.set_error(error_type or "error", self.redactor.text(message))

    def content(self, value: Any) -> str:
        """``value`` as redacted, truncated JSON text (for opt-in content attributes)."""
        return self.redactor.json(value, self.max_content_chars)

    @contextmanager
    def span(
        self,
        name: str,
        *,
        kind: int = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> Iterator[Span]:
        """A span around a block, nested under :func:`current_span` (workflow steps, MCP
        calls, memory operations, your own code). An exception marks it failed."""
        from .hook import innermost, is_local_root

        parent = innermost(self)[1]
        if trace_id is None:
            trace_id = parent.trace_id if parent is not None else new_span_id() + new_span_id()
        elif parent is not None and parent.trace_id != trace_id:
            parent = None
        span = self.start_span(name, trace_id, parent, kind=kind, attributes=dict(attributes or {}))
        token = CURRENT_SPAN.set(span)
        try:
            yield span
        except BaseException as exc:
            self.record_error(span, exc)
            raise
        finally:
            CURRENT_SPAN.reset(token)
            self.end_span(span, root=is_local_root(parent))

    # -- exporters -----------------------------------------------------------------------------

    def add_exporter(
        self,
        exporter: Exporter,
        *,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay: float = 0.5,
    ) -> BatchProcessor:
        """Send spans to ``exporter`` too (through its own queue) from now on."""
        p = BatchProcessor(exporter, max_queue=max_queue, batch_size=batch_size, delay=delay)
        self.processors = [*self.processors, p]
        return p

    def remove_processor(self, processor: BatchProcessor, timeout: float = 5.0) -> None:
        """Stop sending spans to ``processor``'s exporter (what is queued is sent first)."""
        self.processors = [p for p in self.processors if p is not processor]
        processor.shutdown(timeout)

    # -- lifecycle -----------------------------------------------------------------------------

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued; True when every exporter's queue is empty."""
        return all([p.force_flush(timeout) for p in self.processors])

    def shutdown(self, timeout: float = 5.0) -> None:
        for p in self.processors:
            p.shutdown(timeout)

    def stats(self) -> list[dict[str, Any]]:
        """Per exporter: queued, exported, dropped (queue full), failed (export errors)."""
        return [p.stats() for p in self.processors]
