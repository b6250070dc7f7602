"""OTLP (opentelemetry/proto/trace/v1) encoders: protobuf bytes and JSON, by hand.

The trace protocol is small and stable (v1), so encoding it here costs no dependency: no
``protobuf`` runtime, no OpenTelemetry SDK. The tests decode what this writes with the
official ``opentelemetry-proto`` classes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..span import Span

__all__ = ["encode_json", "encode_protobuf"]

_SCOPE_NAME = "vivace"


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _len(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _str(field: int, s: str) -> bytes:
    return _len(field, s.encode("utf-8", "replace")) if s else b""


def _fixed64(field: int, n: int) -> bytes:
    return _key(field, 1) + struct.pack("<Q", n)


def _any_value(v: Any) -> bytes:
    # AnyValue: string 1, bool 2, int 3, double 4, array 5, kvlist 6, bytes 7
    if isinstance(v, bool):
        return _key(2, 0) + _varint(int(v))
    if isinstance(v, int):
        return _key(3, 0) + _varint(v)
    if isinstance(v, float):
        return _key(4, 1) + struct.pack("<d", v)
    if isinstance(v, str):
        return _len(1, v.encode("utf-8", "replace"))
    if isinstance(v, list | tuple):
        return _len(5, b"".join(_len(1, _any_value(x)) for x in v))
    if isinstance(v, bytes):
        return _len(7, v)
    return _len(1, json.dumps(v, default=str).encode())


def _kv(key: str, value: Any) -> bytes:
    return _len(1, key.encode()) + _len(2, _any_value(value))


def _attrs(field: int, attrs: Mapping[str, Any]) -> bytes:
    return b"".join(_len(field, _kv(k, v)) for k, v in attrs.items() if v is not None)


def _span(s: Span) -> bytes:
    out = [
        _len(1, bytes.fromhex(s.trace_id)),
        _len(2, bytes.fromhex(s.span_id)),
    ]
    if s.parent_span_id:
        out.append(_len(4, bytes.fromhex(s.parent_span_id)))
    out.append(_str(5, s.name))
    out.append(_key(6, 0) + _varint(s.kind))
    out.append(_fixed64(7, s.start_ns))
    out.append(_fixed64(8, s.end_ns or s.start_ns))
    out.append(_attrs(9, s.attributes))
    for name, t, attrs in s.events or ():
        out.append(_len(11, _fixed64(1, t) + _str(2, name) + _attrs(3, attrs)))
    status = _str(2, s.status_message) + (_key(3, 0) + _varint(s.status) if s.status else b"")
    out.append(_len(15, status))
    return b"".join(out)


def encode_protobuf(spans: Sequence[Span], resource: Mapping[str, Any]) -> bytes:
    """An ``ExportTraceServiceRequest`` (protobuf) with one resource and one scope."""
    scope = _len(1, _str(1, _SCOPE_NAME))
    scope_spans = scope + b"".join(_len(2, _span(s)) for s in spans)
    resource_spans = _len(1, _attrs(1, resource)) + _len(2, scope_spans)
    return _len(1, resource_spans)


def _json_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_json_value(x) for x in v]}}
    return {"stringValue": json.dumps(v, default=str)}


def _json_attrs(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _json_value(v)} for k, v in attrs.items() if v is not None]


def _json_span(s: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": s.trace_id,
        "spanId": s.span_id,
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": str(s.start_ns),
        "endTimeUnixNano": str(s.end_ns or s.start_ns),
        "attributes": _json_attrs(s.attributes),
        "status": {"code": s.status, "message": s.status_message},
    }
    if s.parent_span_id:
        out["parentSpanId"] = s.parent_span_id
    if s.events:
        out["events"] = [
            {"timeUnixNano": str(t), "name": n, "attributes": _json_attrs(a)}
            for n, t, a in s.events
        ]
    return out


def encode_json(spans: Iterable[Span], resource: Mapping[str, Any]) -> bytes:
    """The same request in OTLP's JSON encoding (hex ids, as the spec requires)."""
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attrs(resource)},
                "scopeSpans": [
                    {"scope": {"name": _SCOPE_NAME}, "spans": [_json_span(s) for s in spans]}
                ],
            }
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()
