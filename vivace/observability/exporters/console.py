"""Print each span as one line (``vivace serve --trace console``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from ..span import ERROR, Span
from .base import Exporter

__all__ = ["ConsoleExporter"]

_SHOWN = (
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.call.id",
    "vivace.cost_usd",
    "error.type",
)


class ConsoleExporter(Exporter):
    """One line per span: trace/span ids, name, duration, key attributes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def export(self, spans: Sequence[Span]) -> None:
        out = self.stream or sys.stderr
        for s in spans:
            extra = " ".join(f"{k}={s.attributes[k]}" for k in _SHOWN if k in s.attributes)
            flag = " ERROR " + s.status_message if s.status == ERROR else ""
            out.write(
                f"[trace {s.trace_id} span {s.span_id} parent {s.parent_span_id or '-'}] "
                f"{s.name} {s.duration_ms:.2f}ms {extra}{flag}\n"
            )
        out.flush()
