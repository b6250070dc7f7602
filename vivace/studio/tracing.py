"""What the Studio turns on besides its routes: tracing into the server's storage (the Traces
screen reads it back) and live metrics (``/metrics``).

When tracing is already configured (:func:`vivace.observability.configure`), the Studio's
exporters are added to that tracer, so its sampling, content capture and exporters stay;
otherwise a tracer is configured for them. At shutdown the Studio's exporters are flushed
and removed again.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["StudioTracing"]


class StudioTracing:
    """The Studio's exporters: live metrics, and spans into ``storage`` (when there is one)."""

    def __init__(self, storage: Any) -> None:
        from ..observability import StorageExporter, active_tracer, configure
        from ..observability.metrics import MetricsExporter

        self.metrics = MetricsExporter()
        self.storage_exporter = StorageExporter(storage) if storage is not None else None
        ours: list[Any] = [self.metrics]
        if self.storage_exporter is not None:
            ours.append(self.storage_exporter)
        tracer = active_tracer()
        self.own_tracer = tracer is None
        if tracer is None:
            tracer = configure(*ours, delay=0.2)
            self.processors = list(tracer.processors)
        else:
            self.processors = [tracer.add_exporter(e, delay=0.2) for e in ours]
        self.tracer = tracer
        self.metrics.sources.append(tracer)
        self._bound = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write spans on ``loop`` (the one the server's storage is used on)."""
        if not self._bound:
            self._bound = True
            if self.storage_exporter is not None:
                self.storage_exporter.bind_loop(loop)

    async def aclose(self) -> None:
        """Flush the Studio's exporters and stop sending spans to them (off the loop: the
        storage exporter writes on it)."""
        from ..observability import active_tracer, disable

        tracer = self.tracer
        for p in self.processors:
            await asyncio.to_thread(tracer.remove_processor, p)
        self.processors = []
        if self.own_tracer and active_tracer() is tracer and not tracer.processors:
            await asyncio.to_thread(disable)
