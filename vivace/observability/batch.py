"""Batched, non-blocking export: a bounded queue per exporter and a worker thread.

A run only appends its ended spans to a ``deque`` (never waits on I/O). The worker sends
batches; a dead, slow or hanging exporter makes the queue fill up, and spans past
``max_queue`` are dropped and counted, with a rate-limited warning - memory stays bounded and
runs keep their speed.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exporters.base import Exporter
    from .span import Span

__all__ = ["BatchProcessor"]

log = logging.getLogger("vivace.observability")

_LIVE: weakref.WeakSet[BatchProcessor] = weakref.WeakSet()
_ATEXIT = False


def _flush_all_at_exit() -> None:
    for p in list(_LIVE):
        p.shutdown(timeout=2.0)


class BatchProcessor:
    """Queue ended spans and export them from a daemon thread.

    Args:
        exporter: What receives the batches (its ``export(spans)`` runs in the worker).
        max_queue: Most spans waiting; past it new spans are dropped (``dropped`` counts them).
        batch_size: Most spans per export call.
        delay: Seconds the worker waits for more spans before sending a partial batch.

    ``dropped`` (queue full) and ``failed`` (the exporter raised or timed out; those spans are
    lost too) are counters a test or a ``/metrics`` scrape can read.
    """

    __slots__ = (
        "__weakref__",
        "_last_warning",
        "_lock",
        "_queue",
        "_stop",
        "_thread",
        "_wake",
        "batch_size",
        "delay",
        "dropped",
        "exported",
        "exporter",
        "failed",
        "in_flight",
        "max_queue",
    )

    def __init__(
        self,
        exporter: Exporter,
        *,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay: float = 0.5,
    ) -> None:
        self.exporter = exporter
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.delay = delay
        self._queue: deque[Span] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_warning = 0.0
        self.dropped = 0
        self.failed = 0
        self.exported = 0
        self.in_flight = 0

    # called on the run's path: O(1), no I/O, no waiting
    def on_end(self, span: Span) -> None:
        q = self._queue
        if len(q) >= self.max_queue:
            self.dropped += 1
            self._warn("queue full (the exporter is slow or down)")
            return
        q.append(span)
        if self._thread is None:
            self._start()
        if len(q) >= self.batch_size:
            self._wake.set()

    def _start(self) -> None:
        global _ATEXIT
        with self._lock:
            if self._thread is not None or self._stop:
                return
            t = threading.Thread(
                target=self._run, name=f"vivace-export-{type(self.exporter).__name__}", daemon=True
            )
            self._thread = t
            _LIVE.add(self)
            if not _ATEXIT:
                import atexit

                atexit.register(_flush_all_at_exit)
                _ATEXIT = True
            t.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.delay)
            self._wake.clear()
            self._drain()
            if self._stop:
                self._drain()
                return

    def _drain(self) -> None:
        q = self._queue
        while q:
            batch: list[Span] = []
            n = self.batch_size
            while q and n:
                batch.append(q.popleft())
                n -= 1
            self.in_flight = len(batch)
            try:
                self.exporter.export(batch)
                self.exported += len(batch)
            except Exception as exc:
                self.failed += len(batch)
                self._warn(f"export failed: {type(exc).__name__}: {exc}")
            finally:
                self.in_flight = 0

    def _warn(self, why: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 10.0:
            self._last_warning = now
            log.warning(
                "tracing: %s; %s dropped %d spans (queue full) and %d (export failed) so far",
                why,
                type(self.exporter).__name__,
                self.dropped,
                self.failed,
            )

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is sent (or ``timeout``); True when it is empty."""
        deadline = time.monotonic() + timeout
        while self._queue or self.in_flight:
            if self._thread is None:
                self._drain()
                break
            self._wake.set()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), stop the worker, close the exporter."""
        self.force_flush(timeout)
        self._stop = True
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        _LIVE.discard(self)
        close = getattr(self.exporter, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass

    def stats(self) -> dict[str, Any]:
        return {
            "exporter": type(self.exporter).__name__,
            "queued": len(self._queue),
            "exported": self.exported,
            "dropped": self.dropped,
            "failed": self.failed,
        }
