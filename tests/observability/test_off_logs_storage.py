"""Tracing off costs nothing; trace ids in log lines; spans in the storage traces domain."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

from vivace import Agent, tool
from vivace.agent.capability import default_capabilities
from vivace.observability import StorageExporter, configure, disable
from vivace.observability.logs import JSONFormatter, TraceContextFilter
from vivace.testing import ScriptedModel, call


def test_tracing_off_imports_nothing_and_adds_no_capability() -> None:
    code = (
        "import sys\n"
        "from vivace import Agent, tool\n"
        "from vivace.testing import ScriptedModel, call\n"
        "@tool\n"
        "def f(x: int) -> int:\n"
        "    '''f'''\n"
        "    return x\n"
        "a = Agent(model=ScriptedModel([call('f', {'x': 1}), 'done']), tools=[f])\n"
        "assert a.run('go').output == 'done'\n"
        "assert a.run_capabilities() == ()\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('vivace.observability', 'opentelemetry', 'google.protobuf')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_disable_removes_the_capability() -> None:
    configure(delay=0.01)
    assert len(default_capabilities()) == 1
    assert len(Agent(model="test/echo").run_capabilities()) == 1
    disable()
    assert default_capabilities() == ()
    assert Agent(model="test/echo").run_capabilities() == ()


def test_log_lines_carry_the_trace_id() -> None:
    configure(delay=0.01)
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(TraceContextFilter())
    log = logging.getLogger("vivace.test.app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    @tool
    def work(n: int) -> str:
        """Works."""
        log.info("working on %d", n)
        return "done"

    try:
        result = Agent(model=ScriptedModel([call("work", {"n": 3}), "ok"]), tools=[work]).run("go")
        log.info("after the run")
    finally:
        log.removeHandler(handler)
    inside, after = (json.loads(line) for line in buf.getvalue().splitlines())
    assert inside["message"] == "working on 3"
    assert inside["trace_id"] == result.trace_id and inside["run_id"] == result.run_id
    assert after["trace_id"] is None


def test_log_lines_carry_the_trace_id_with_tracing_off() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JSONFormatter())
    log = logging.getLogger("vivace.test.off")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    @tool
    def work() -> str:
        """Works."""
        log.info("in tool")
        return "done"

    try:
        result = Agent(model=ScriptedModel([call("work", {}), "ok"]), tools=[work]).run("go")
    finally:
        log.removeHandler(handler)
    assert json.loads(buf.getvalue())["trace_id"] == result.trace_id


async def test_storage_exporter_writes_the_traces_domain(storage) -> None:
    exporter = StorageExporter(storage)
    import asyncio

    exporter.bind_loop(asyncio.get_running_loop())
    tracer = configure(exporter, delay=0.01)

    @tool
    def get_weather(city: str) -> str:
        """Weather."""
        return "Sunny"

    agent = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Rome"}), "Sunny."]),
        tools=[get_weather],
        name="stored",
    )
    result = await agent.arun("Weather in Rome?", session_id="sess-1")
    assert await asyncio.to_thread(tracer.force_flush)
    spans = await storage.traces.get_trace(result.trace_id)
    assert [s.name for s in spans] == [
        "invoke_agent stored",
        "chat scripted",
        "execute_tool get_weather",
        "chat scripted",
    ]
    root = spans[0]
    assert root.span_id == result.span_id and root.parent_id is None
    assert root.run_id == result.run_id and root.session_id == "sess-1"
    assert all(s.parent_id == root.span_id for s in spans[1:])
    assert root.status == "ok" and root.kind == "internal" and spans[1].kind == "client"
    assert spans[1].attributes["gen_ai.usage.input_tokens"] >= 1
    assert root.end_time >= root.start_time > 0
    by_run = await storage.traces.list_spans(run_id=result.run_id)
    assert len(by_run) == 4
