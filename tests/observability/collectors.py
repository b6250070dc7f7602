"""OTLP/HTTP collectors on 127.0.0.1 for tests: one that decodes every request with the
official ``opentelemetry-proto`` classes, one that hangs, and a port that refuses."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CollectorSpan:
    """A span as the collector decoded it."""

    def __init__(self, span: Any, resource: dict[str, Any]) -> None:
        self.name: str = span.name
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex() or None
        self.kind = span.kind
        self.start_ns = span.start_time_unix_nano
        self.end_ns = span.end_time_unix_nano
        self.status_code = span.status.code
        self.status_message = span.status.message
        self.attributes = {kv.key: _value(kv.value) for kv in span.attributes}
        self.resource = resource

    def __repr__(self) -> str:
        return f"<CollectorSpan {self.name}>"


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


class Collector:
    """Accepts ``POST /v1/traces`` (protobuf or JSON) and keeps what it decoded."""

    def __init__(self, mode: str = "accept") -> None:
        self.mode = mode  # accept | hang | error
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.spans: list[CollectorSpan] = []
        self.release = threading.Event()
        self.requests_seen = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                collector.bodies.append(body)
                collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                collector.requests_seen.set()
                if collector.mode == "hang":
                    collector.release.wait(30)
                    return
                if collector.mode == "error":
                    self.send_response(503)
                    self.end_headers()
                    return
                collector._decode(body, self.headers.get("content-type", ""))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _decode(self, body: bytes, ctype: str) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        req = ExportTraceServiceRequest()
        if ctype.startswith("application/json"):
            # OTLP/JSON ids are hex; protobuf's JSON parser wants base64: convert first
            import base64
            import json

            from google.protobuf import json_format

            data = json.loads(body)
            for rs in data["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        for k in ("traceId", "spanId", "parentSpanId"):
                            if k in s:
                                s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
            json_format.ParseDict(data, req)
        else:
            req.ParseFromString(body)
        for rs in req.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(CollectorSpan(s, resource))

    def start(self) -> Collector:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def by_name(self, prefix: str) -> list[CollectorSpan]:
        return [s for s in self.spans if s.name.startswith(prefix)]


def refused_url() -> str:
    """A localhost URL nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
