"""Secrets never reach an exporter; a dead, hanging or failing collector never slows or
fails a run, and memory stays bounded."""

from __future__ import annotations

import logging

import pytest

from vivace import Agent, tool
from vivace.models import get_model
from vivace.observability import OTLPExporter, configure
from vivace.testing import ScriptedModel, call
from vivace.testing.fake_providers import FakeOpenAIChat, HTTPFault, ToolCall, Turn

from .collectors import Collector, refused_url

HEADER_KEY = "sk-proj-" + "Q7w" * 14
ENV_KEY = "env-secret-" + "9f2" * 10
ARG_SECRET = "hunter2-corp-password"


def test_no_secret_reaches_the_exporter(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_API_KEY", ENV_KEY)
    tracer = configure(
        OTLPExporter(collector.url), delay=0.01, capture_content=True, secrets=[ARG_SECRET]
    )

    @tool
    def login(user: str, password: str, note: str) -> str:
        """Log in."""
        raise PermissionError(f"login failed for {user} with {password} (key {HEADER_KEY}, {note})")

    with FakeOpenAIChat() as srv:
        srv.script(
            Turn(
                tool_calls=[
                    ToolCall(
                        "login",
                        {
                            "user": "ann",
                            "password": ARG_SECRET,
                            "note": f"env {ENV_KEY} bearer Bearer {HEADER_KEY}",
                        },
                    )
                ]
            ),
            HTTPFault(401, message=f"Incorrect API key provided: {HEADER_KEY}"),
        )
        model = get_model(
            "openai/gpt-4o-mini", base_url=srv.base_url, api_key=HEADER_KEY, max_retries=0
        )
        result = Agent(model=model, tools=[login], name="sec").run(f"my key is {HEADER_KEY}")
        assert srv.requests[0].headers["authorization"] == f"Bearer {HEADER_KEY}"
    assert result.status == "failed"
    assert tracer.force_flush()
    assert collector.by_name("execute_tool login")[0].status_code == 2
    assert collector.by_name("chat")[-1].status_code == 2
    assert len(collector.bodies) >= 1
    everything = b"".join(collector.bodies)
    for secret in (HEADER_KEY, ENV_KEY, ARG_SECRET):
        assert secret.encode() not in everything
    assert b"[REDACTED]" in everything
    assert b"login failed for ann" in everything  # the rest of the error is kept


def test_a_collector_that_hangs_never_blocks_runs(caplog: pytest.LogCaptureFixture) -> None:
    hanging = Collector(mode="hang").start()
    try:
        tracer = configure(
            OTLPExporter(hanging.url, timeout=30), delay=0.01, max_queue=20, batch_size=5
        )
        agent = Agent(model=ScriptedModel(["ok"] * 60), name="h")
        caplog.set_level(logging.WARNING, "vivace.observability")
        results = [agent.run("x")]
        assert tracer.force_flush(timeout=0.5) is False  # the export is stuck in the collector
        assert hanging.requests_seen.is_set()
        results += [agent.run("x") for _ in range(59)]
        # every run finished while the collector still holds the first export request
        assert not hanging.release.is_set() and len(hanging.bodies) == 1
        assert all(r.status == "completed" for r in results)
        [stats] = tracer.stats()
        assert stats["queued"] <= 20  # bounded
        assert stats["dropped"] > 0
        assert stats["dropped"] + stats["queued"] + 5 >= 120 - 5  # nothing is lost unseen
        assert any("dropped" in r.getMessage() for r in caplog.records)
    finally:
        hanging.release.set()
        hanging.stop()


def test_a_collector_that_refuses_connections(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "vivace.observability")
    tracer = configure(OTLPExporter(refused_url(), timeout=2), delay=0.01)
    agent = Agent(model=ScriptedModel([call("noop", {}), "ok"] * 10), tools=[noop], name="r")
    results = [agent.run("x") for _ in range(10)]
    assert all(r.status == "completed" for r in results)
    tracer.force_flush()
    [stats] = tracer.stats()
    assert stats["failed"] == 10 * 4 and stats["exported"] == 0
    warning = next(r.getMessage() for r in caplog.records if "export failed" in r.getMessage())
    assert "ConnectError" in warning


def test_a_collector_answering_errors_counts_failures() -> None:
    failing = Collector(mode="error").start()
    try:
        tracer = configure(OTLPExporter(failing.url), delay=0.01)
        assert Agent(model=ScriptedModel(["ok"]), name="e").run("x").status == "completed"
        tracer.force_flush()
        [stats] = tracer.stats()
        assert stats["failed"] == 2 and stats["exported"] == 0
    finally:
        failing.stop()


@tool
def noop() -> str:
    """Does nothing."""
    return "ok"


def test_exporter_repr_hides_auth_headers() -> None:
    e = OTLPExporter("http://127.0.0.1:1", headers={"authorization": "Basic " + "x" * 20})
    assert "x" * 20 not in repr(e)
    assert e.endpoint == "http://127.0.0.1:1/v1/traces"


def test_endpoint_and_headers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-a=1,authorization=Basic%20abc")
    e = OTLPExporter()
    assert e.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert e.headers == {"x-a": "1", "authorization": "Basic abc"}
    with pytest.raises(Exception, match="encoding"):
        OTLPExporter(encoding="xml")
