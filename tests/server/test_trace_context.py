"""Every request has a trace: the caller's (``traceparent``) or a new one. Error bodies, the
``x-vivace-trace-id`` header, the runs a request starts, every SSE event (synthetic ones too)
and the server's log lines carry it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx
import pytest

from vivace import Agent
from vivace.observability import InMemoryExporter, configure, disable
from vivace.observability.logs import JSONFormatter, TraceContextFilter
from vivace.server import VivaceApp
from vivace.testing import EchoModel
from vivace.tools.toolset import Toolset

from .conftest import parse_sse

HEX32 = re.compile(r"^[0-9a-f]{32}$")
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def _client(app: Any, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, **kw), base_url="http://t")


class _Broken(Toolset):
    def static_tools(self) -> Any:
        raise RuntimeError("this toolset cannot describe itself")


def _traced_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    trace_id = r.json()["error"]["trace_id"]
    assert HEX32.match(trace_id)
    assert r.headers["x-vivace-trace-id"] == trace_id
    return trace_id


async def test_every_error_body_names_the_requests_trace(make_app: Any) -> None:
    app = make_app(max_body_bytes=1000)
    async with _client(app) as c:
        ids = {
            _traced_error(await c.get("/nope"), 404),
            _traced_error(await c.delete("/agents"), 405),
            _traced_error(await c.get("/agents/nobody"), 404),
            _traced_error(await c.post("/agents/echo/runs", content=b"{"), 400),
            _traced_error(await c.post("/agents/echo/runs", json={}), 422),
            _traced_error(
                await c.post(
                    "/agents/echo/runs", content=b"x", headers={"content-type": "text/plain"}
                ),
                415,
            ),
            _traced_error(await c.post("/agents/echo/runs", json={"input": "x" * 5000}), 413),
            _traced_error(await c.get("/sessions/a%07b"), 400),
        }
        assert len(ids) == 8  # a new trace per request
        r = await c.get("/nope", headers={"traceparent": TRACEPARENT})
        assert _traced_error(r, 404) == CALLER_TRACE
        # a malformed traceparent is ignored, not an error
        r = await c.get("/nope", headers={"traceparent": "00-zz-00-01"})
        assert _traced_error(r, 404) != CALLER_TRACE
        ok = await c.get("/health")
        assert HEX32.match(ok.headers["x-vivace-trace-id"])


async def test_an_unexpected_error_is_a_500_with_the_trace_in_body_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VivaceApp([Agent(model=EchoModel(), name="odd", tools=[_Broken()])], auth=False)
    caplog.set_level(logging.ERROR, "vivace.server")
    async with _client(app, raise_app_exceptions=False) as c:
        r = await c.get("/agents/odd", headers={"traceparent": TRACEPARENT})
    assert r.status_code == 500
    assert r.json()["error"] == {
        "type": "server_error",
        "code": "internal_error",
        "message": "internal server error",
        "param": None,
        "trace_id": CALLER_TRACE,
    }
    [record] = [rec for rec in caplog.records if "unhandled error" in rec.getMessage()]
    line = json.loads(JSONFormatter().format(record))
    assert line["trace_id"] == CALLER_TRACE and "RuntimeError" in line["exception"]


async def test_a_run_joins_the_callers_trace_and_its_span_is_the_callers_child(
    make_app: Any,
) -> None:
    spans = InMemoryExporter()
    tracer = configure(spans, delay=0.01)
    try:
        app = make_app()
        async with _client(app) as c:
            r = await c.post(
                "/agents/echo/runs", json={"input": "hi"}, headers={"traceparent": TRACEPARENT}
            )
            result = r.json()
            assert result["trace_id"] == CALLER_TRACE == r.headers["x-vivace-trace-id"]
            # without a traceparent the run is in the request's new trace
            r = await c.post("/agents/echo/runs", json={"input": "hi", "stream": True})
            frames = parse_sse(r.text)
            assert {f["data"]["trace_id"] for f in frames} == {r.headers["x-vivace-trace-id"]}
        tracer.force_flush()
        [run] = [
            s
            for s in spans.spans
            if s.name == "invoke_agent echo" and s.attributes["vivace.run_id"] == result["run_id"]
        ]
        assert (run.trace_id, run.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
        assert run.span_id == result["span_id"]
        # the trace's root in this process (trace lists find it although it has a parent)
        assert run.attributes["vivace.local_root"] is True
    finally:
        disable()


async def test_openai_streams_carry_the_trace_in_every_event(make_app: Any) -> None:
    app = make_app()
    async with _client(app) as c:
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        r = await c.post("/v1/chat/completions", json=body, headers={"traceparent": TRACEPARENT})
        chunks = [f["data"] for f in parse_sse(r.text) if f["data"] != "[DONE]"]
        assert len(chunks) >= 3 and {ch["trace_id"] for ch in chunks} == {CALLER_TRACE}
        r = await c.post(
            "/v1/responses",
            json={"model": "echo", "input": "hi", "stream": True},
            headers={"traceparent": TRACEPARENT},
        )
        events = [f["data"] for f in parse_sse(r.text)]
        assert len(events) >= 5 and {e["trace_id"] for e in events} == {CALLER_TRACE}


async def test_synthetic_events_carry_the_runs_trace(make_app: Any, gate: Any) -> None:
    """A run cut off by a server shutdown ends with a synthetic ``run_cancelled`` event."""
    app = make_app()
    async with _client(app) as c:
        async with app.lifespan():
            body = {"input": "go", "stream": True}
            task = asyncio.create_task(c.post("/agents/gated/runs", json=body))
            for _ in range(500):  # until the run waits at the gate
                if len(app.log):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        # the lifespan ended: live runs were cancelled, their streams end with that
        r = await task
        gate.set()  # let the tool's thread finish
    events = [f["data"] for f in parse_sse(r.text)]
    assert events[0]["type"] == "run_started"
    assert events[-1] == {
        "type": "run_cancelled",
        "run_id": events[0]["run_id"],
        "seq": events[-2]["seq"] + 1,
        "reason": "server shutting down",
        "trace_id": r.headers["x-vivace-trace-id"],
        "span_id": events[0]["span_id"],
        "parent_run_id": None,
    }
    assert {e["trace_id"] for e in events} == {r.headers["x-vivace-trace-id"]}


async def test_server_log_lines_carry_the_trace(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that fails unexpectedly is logged with its trace and run id."""
    from vivace.server import sse as sse_module

    app = make_app()
    handler = logging.Handler()
    lines: list[dict[str, Any]] = []
    handler.emit = lambda record: lines.append(json.loads(JSONFormatter().format(record)))  # type: ignore[method-assign]
    handler.addFilter(TraceContextFilter())
    logger = logging.getLogger("vivace.server")
    logger.addHandler(handler)
    try:
        async with _client(app) as c:
            original = sse_module.InMemoryEventLog.append

            def failing(self: Any, run_id: str, event: dict[str, Any]) -> None:
                if event.get("type") == "text_delta":
                    raise RuntimeError("the log is full")
                original(self, run_id, event)

            sse_module.InMemoryEventLog.append = failing  # type: ignore[method-assign]
            try:
                r = await c.post(
                    "/agents/echo/runs", json={"input": "hi"}, headers={"traceparent": TRACEPARENT}
                )
            finally:
                sse_module.InMemoryEventLog.append = original  # type: ignore[method-assign]
        out = r.json()
        assert out["status"] == "failed" and out["trace_id"] == CALLER_TRACE
    finally:
        logger.removeHandler(handler)
    [line] = [x for x in lines if "failed unexpectedly" in x["message"]]
    assert line["trace_id"] == CALLER_TRACE
    assert line["run_id"] == out["run_id"]
