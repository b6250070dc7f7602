"""A finished or open span: the unit every exporter receives.

Spans are plain slotted objects (no OpenTelemetry SDK): building one costs a few hundred
nanoseconds. Ids are hex strings in OpenTelemetry's sizes (trace 32, span 16), so a Vivace
run's ``trace_id`` / ``span_id`` are the exported ids.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

__all__ = ["ERROR", "OK", "UNSET", "Span", "SpanKind", "new_span_id"]

UNSET, OK, ERROR = 0, 1, 2  # OTLP status codes


class SpanKind:
    """OTLP span kinds."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3


_RNG = random.Random(os.urandom(16))  # ids need uniqueness, not secrecy (as in the OTel SDK)
_bits = _RNG.getrandbits


def new_span_id() -> str:
    """16 random hex digits (never all zeros)."""
    return f"{_bits(64) or 1:016x}"


class Span:
    """One timed operation of a trace. ``attributes`` follow the OpenTelemetry GenAI names
    (``gen_ai.*``) plus Vivace's own (``vivace.*``); times are Unix nanoseconds."""

    __slots__ = (
        "attributes",
        "end_ns",
        "events",
        "kind",
        "name",
        "parent_span_id",
        "span_id",
        "start_ns",
        "status",
        "status_message",
        "trace_id",
    )

    def __init__(
        self,
        name: str,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None = None,
        kind: int = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        start_ns: int = 0,
    ) -> None:
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.kind = kind
        self.attributes: dict[str, Any] = {} if attributes is None else attributes
        self.start_ns = start_ns or time.time_ns()
        self.end_ns = 0
        self.status = UNSET
        self.status_message = ""
        self.events: list[tuple[str, int, dict[str, Any]]] | None = None

    @property
    def ended(self) -> bool:
        return self.end_ns != 0

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6 if self.end_ns else 0.0

    def set_error(self, error_type: str, message: str) -> None:
        self.status = ERROR
        self.status_message = message
        self.attributes["error.type"] = error_type

    def add_event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        if self.events is None:
            self.events = []
        self.events.append((name, time.time_ns(), attributes or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what the storage exporter and the Studio use)."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "status": ("unset", "ok", "error")[self.status],
            "status_message": self.status_message,
            "attributes": self.attributes,
            "events": [{"name": n, "time_ns": t, "attributes": a} for n, t, a in self.events or ()],
        }

    def __repr__(self) -> str:
        return f"<Span {self.name!r} {self.trace_id}/{self.span_id}>"
