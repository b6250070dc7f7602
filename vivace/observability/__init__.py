"""Observability: OpenTelemetry GenAI traces of runs, model requests and tool calls; exporters
(OTLP/HTTP, console, storage); sampling; redaction; cost and latency metrics.

Off by default and free when off: nothing here is imported until you call :func:`configure`.

    from vivace.observability import configure, OTLPExporter
    configure(OTLPExporter("http://localhost:6006"))   # every agent run is traced from now on
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .capability import Tracing
from .cost import set_prices
from .exporters import ConsoleExporter, Exporter, InMemoryExporter, OTLPExporter, StorageExporter
from .hook import install, uninstall
from .span import Span, SpanKind
from .tracer import Tracer, current_span

__all__ = [
    "ConsoleExporter",
    "Exporter",
    "InMemoryExporter",
    "OTLPExporter",
    "Span",
    "SpanKind",
    "StorageExporter",
    "Tracer",
    "Tracing",
    "active_tracer",
    "configure",
    "current_span",
    "disable",
    "set_prices",
]


def configure(
    *exporters: Exporter,
    sample_ratio: float = 1.0,
    sample_errors: bool = True,
    capture_content: bool = False,
    secrets: Sequence[str] = (),
    prices: Mapping[str, Mapping[str, float]] | None = None,
    **batching: Any,
) -> Tracer:
    """Trace every agent run of this process (replacing an earlier configuration).

    Args:
        exporters: Where spans go; none given: the ``OTEL_EXPORTER_OTLP_ENDPOINT`` collector
            when that variable is set, else the console.
        sample_ratio, sample_errors, capture_content, secrets: see :class:`Tracer`.
        prices: Prices per million tokens for models the catalog does not price
            (:func:`set_prices`).
        batching: ``max_queue``, ``batch_size``, ``delay`` for each exporter's queue.
    """
    import os

    from ..agent import capability as cap_module
    from . import tracer as tracer_module

    if not exporters:
        exporters = (
            (OTLPExporter(),)
            if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            else (ConsoleExporter(),)
        )
    disable()
    if prices is not None:
        set_prices(prices)
    tracer = Tracer(
        exporters,
        sample_ratio=sample_ratio,
        sample_errors=sample_errors,
        capture_content=capture_content,
        secrets=secrets,
        **batching,
    )
    tracer_module.ACTIVE = tracer
    cap_module.set_default_capabilities((Tracing(tracer),))
    install(tracer, replace=True)
    return tracer


def active_tracer() -> Tracer | None:
    """The tracer :func:`configure` set, or None."""
    from . import tracer as tracer_module

    return tracer_module.ACTIVE


def disable(timeout: float = 5.0) -> None:
    """Stop tracing: flush and close the active tracer's exporters."""
    from ..agent import capability as cap_module
    from . import tracer as tracer_module

    tracer = tracer_module.ACTIVE
    tracer_module.ACTIVE = None
    cap_module.set_default_capabilities(())
    uninstall()
    if tracer is not None:
        tracer.shutdown(timeout)
