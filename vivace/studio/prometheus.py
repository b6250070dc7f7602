"""The Studio's ``/metrics`` route: this process's live metrics in Prometheus' text format.

Runs, tokens, cost and tool calls per agent and model, latency histograms, and the health of
the trace exporters (queued, exported, dropped, failed). Needs ``admin`` (everyone has it
while the server is open to localhost only): give the scraper an admin key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..server.routing import Doc, Op

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ROUTES"]

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def prometheus_metrics(request: Request) -> Response:
    from starlette.responses import Response

    studio = getattr(request.app.state, "studio", None)
    metrics = studio.metrics if studio is not None else None
    text = metrics.prometheus_text() if metrics is not None else ""
    return Response(text, media_type=PROMETHEUS_TYPE)


ROUTES = [
    Op(
        "GET",
        "/metrics",
        prometheus_metrics,
        "Live metrics (Prometheus text format)",
        "studio",
        scope="admin",
        responses={200: Doc({"text/plain": {"type": "string"}}, "Prometheus' text format")},
    ),
]
