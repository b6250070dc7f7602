"""Vivace's spans read back from a real Arize Phoenix (opt-in: VIVACE_RUN_PHOENIX_TESTS=1).

Phoenix is not a dependency: install it in a virtualenv of its own (it pins many packages)
and point the test at it, or put ``phoenix`` on the PATH::

    python -m venv .phoenix-venv && .phoenix-venv/bin/pip install arize-phoenix
    VIVACE_RUN_PHOENIX_TESTS=1 pytest tests/observability/test_phoenix.py

(``VIVACE_PHOENIX=/path/to/phoenix`` names another executable.) The fixture starts
``phoenix serve`` on loopback, on free ports, in a temporary working directory; the tests
export over OTLP/HTTP exactly as docs/observability.md says, then read the spans back through
Phoenix's REST API: names, nesting, span kinds and token counts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vivace import Agent, tool
from vivace.observability import OTLPExporter, configure
from vivace.testing import ScriptedModel, call

pytestmark = pytest.mark.skipif(
    os.environ.get("VIVACE_RUN_PHOENIX_TESTS") != "1",
    reason="opt-in: set VIVACE_RUN_PHOENIX_TESTS=1 (and install arize-phoenix, see the docstring)",
)

REPO = Path(__file__).resolve().parents[2]


def _executable() -> str | None:
    for candidate in (
        os.environ.get("VIVACE_PHOENIX"),
        str(REPO / ".phoenix-venv" / "bin" / "phoenix"),
        shutil.which("phoenix"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = _executable()
    if exe is None:
        pytest.skip("Phoenix is not installed (see this module's docstring)")
    work = tmp_path_factory.mktemp("phoenix")
    port = _port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_port()),
    }
    log = (work / "phoenix.log").open("wb")
    proc = subprocess.Popen([exe, "serve"], env=env, cwd=work, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/v1/projects", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Phoenix did not start:\n" + (work / "phoenix.log").read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _spans(url: str, trace_id: str, expected: int) -> list[dict[str, Any]]:
    """The trace's spans as Phoenix stored them (waits for ingestion)."""
    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/projects/default/spans", params={"limit": 1000}, timeout=10)
        r.raise_for_status()
        found = [s for s in r.json()["data"] if s["context"]["trace_id"] == trace_id]
        if len(found) >= expected:
            return found
        time.sleep(0.3)
    raise AssertionError(f"Phoenix has {len(found)} of {expected} spans of trace {trace_id}")


def _tree(spans: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """``(depth, name, Phoenix's span kind)`` depth first, children by start time."""
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        kids.setdefault(s["parent_id"], []).append(s)
    out: list[tuple[int, str, str]] = []

    def walk(s: dict[str, Any], depth: int) -> None:
        out.append((depth, s["name"], s["span_kind"]))
        for c in sorted(kids.get(s["context"]["span_id"], []), key=lambda x: x["start_time"]):
            walk(c, depth + 1)

    for root in sorted(kids.get(None, []), key=lambda x: x["start_time"]):
        walk(root, 0)
    return out


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}"


def test_an_agent_run_with_a_tool_in_phoenix(phoenix: str) -> None:
    # the docs' recipe: configure(OTLPExporter("http://localhost:6006/v1/traces"))
    tracer = configure(OTLPExporter(f"{phoenix}/v1/traces"))
    agent = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Paris"}), "Sunny in Paris."]),
        tools=[get_weather],
        name="weather",
    )
    result = agent.run("Weather in Paris?")
    assert tracer.force_flush()
    assert tracer.stats()[0]["failed"] == 0
    spans = _spans(phoenix, result.trace_id, 4)
    assert _tree(spans) == [
        (0, "invoke_agent weather", "AGENT"),
        (1, "chat scripted", "LLM"),
        (1, "execute_tool get_weather", "TOOL"),
        (1, "chat scripted", "LLM"),
    ]
    run = next(s for s in spans if s["name"] == "invoke_agent weather")
    assert run["context"]["span_id"] == result.span_id and run["status_code"] == "OK"
    chats = [s for s in spans if s["span_kind"] == "LLM"]
    # token counts: Phoenix maps the GenAI attributes to its own
    prompt = sum(int(s["attributes"]["llm.token_count.prompt"]) for s in chats)
    completion = sum(int(s["attributes"]["llm.token_count.completion"]) for s in chats)
    assert (prompt, completion) == (result.usage.input_tokens, result.usage.output_tokens)
    assert all(s["attributes"]["gen_ai.request.model"] == "scripted" for s in chats)
    [tool_span] = [s for s in spans if s["span_kind"] == "TOOL"]
    assert tool_span["attributes"]["tool.name"] == "get_weather"


def test_a_two_step_workflow_with_an_agent_step_in_phoenix(phoenix: str) -> None:
    from vivace.workflows import Workflow, step

    @step
    def question(city: str) -> str:
        return f"Weather in {city}?"

    writer = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Oslo"}), "Cold in Oslo."]),
        tools=[get_weather],
        name="writer",
    )
    tracer = configure(OTLPExporter(f"{phoenix}/v1/traces"))
    result = Workflow("forecast").then(question).then(writer).run("Oslo")
    assert result.status == "completed" and result.output == "Cold in Oslo."
    assert tracer.force_flush()
    spans = _spans(phoenix, result.trace_id, 7)
    assert [(d, n) for d, n, _ in _tree(spans)] == [
        (0, "invoke_workflow forecast"),
        (1, "workflow_step question"),
        (1, "workflow_step writer"),
        (2, "invoke_agent writer"),
        (3, "chat scripted"),
        (3, "execute_tool get_weather"),
        (3, "chat scripted"),
    ]
    chats = [s for s in spans if s["span_kind"] == "LLM"]
    assert sum(int(s["attributes"]["llm.token_count.prompt"]) for s in chats) == (
        result.usage.input_tokens
    )
