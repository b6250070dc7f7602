"""OTLP over HTTP: Langfuse, Arize Phoenix, Opik, Jaeger, an OpenTelemetry Collector...

Spans are encoded by hand (protobuf by default, JSON optional) and sent with httpx from the
exporter's worker thread, so the OpenTelemetry SDK is never needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..span import Span
from ._otlp_encode import encode_json, encode_protobuf
from .base import Exporter

__all__ = ["OTLPExporter"]


def _env_headers() -> dict[str, str]:
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or os.environ.get(
        "OTEL_EXPORTER_OTLP_HEADERS", ""
    )
    out: dict[str, str] = {}
    for item in raw.split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            from urllib.parse import unquote

            out[k.strip()] = unquote(v.strip())
    return out


def _endpoint(endpoint: str | None) -> str:
    if endpoint:
        url = endpoint
    else:
        url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or ""
        if url:
            return url
        url = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    url = url.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


class OTLPExporter(Exporter):
    """Send spans to an OTLP/HTTP endpoint.

    Args:
        endpoint: The collector's base URL or its ``.../v1/traces`` URL. Default: the
            ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
            environment variables, else ``http://localhost:4318``.
        headers: Extra headers (auth); merged over ``OTEL_EXPORTER_OTLP_HEADERS``.
        encoding: ``"protobuf"`` (every backend) or ``"json"``.
        timeout: Seconds per export call (a hanging collector costs the worker this long,
            never the run).
        resource: Resource attributes; ``service.name`` defaults to ``OTEL_SERVICE_NAME`` or
            ``"vivace"``.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        encoding: str = "protobuf",
        timeout: float = 10.0,
        resource: Mapping[str, Any] | None = None,
    ) -> None:
        if encoding not in ("protobuf", "json"):
            from ...errors import UserError

            raise UserError("encoding must be 'protobuf' or 'json'")
        self.endpoint = _endpoint(endpoint)
        self.headers = {**_env_headers(), **(headers or {})}
        self.encoding = encoding
        self.timeout = timeout
        from ... import __version__

        self.resource: dict[str, Any] = {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", "vivace"),
            "telemetry.sdk.name": "vivace",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": __version__,
            **(resource or {}),
        }
        self._client: Any = None

    def export(self, spans: Sequence[Span]) -> None:
        import httpx

        client = self._client
        if client is None:
            client = self._client = httpx.Client(timeout=self.timeout)
        if self.encoding == "protobuf":
            body = encode_protobuf(spans, self.resource)
            ctype = "application/x-protobuf"
        else:
            body = encode_json(spans, self.resource)
            ctype = "application/json"
        r = client.post(
            self.endpoint, content=body, headers={**self.headers, "content-type": ctype}
        )
        if r.status_code >= 300:
            raise RuntimeError(f"{self.endpoint} answered HTTP {r.status_code}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:  # never show the headers (they carry keys)
        return f"OTLPExporter({self.endpoint!r}, encoding={self.encoding!r})"
