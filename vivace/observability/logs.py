"""``trace_id`` in every log line: a logging filter and a JSON formatter.

While a traced run is active, :data:`TRACE_CONTEXT` holds ``(trace_id, span_id, run_id)``
(the server sets it for each request, so its log lines carry the request's trace); inside a
tool call the run context gives them even with tracing off.
"""

from __future__ import annotations

import json
import logging

from ..trace_hook import TRACE_CONTEXT

__all__ = ["TRACE_CONTEXT", "JSONFormatter", "TraceContextFilter", "install"]


def _current() -> tuple[str | None, str | None, str | None]:
    tc = TRACE_CONTEXT.get()
    if tc is not None and tc[2] is not None:  # a run
        return tc
    from ..tools.context import current_run_context

    ctx = current_run_context()
    if ctx is not None:
        return ctx.trace_id, ctx.span_id, ctx.run_id
    return tc if tc is not None else (None, None, None)


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id``, ``span_id`` and ``run_id`` to every record (None outside a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            record.trace_id, record.span_id, record.run_id = _current()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id, span_id, run_id."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "trace_id"):
            record.trace_id, record.span_id, record.run_id = _current()
        out = {
            "time": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": record.trace_id,  # type: ignore[attr-defined]
            "span_id": record.span_id,  # type: ignore[attr-defined]
            "run_id": record.run_id,  # type: ignore[attr-defined]
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def install(handler: logging.Handler | None = None, level: int = logging.INFO) -> logging.Handler:
    """Log ``vivace.*`` as JSON lines with the trace context (to stderr by default)."""
    h = handler or logging.StreamHandler()
    h.setFormatter(JSONFormatter())
    h.addFilter(TraceContextFilter())
    root = logging.getLogger("vivace")
    root.addHandler(h)
    root.setLevel(level)
    return h
