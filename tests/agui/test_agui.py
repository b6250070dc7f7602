"""AG-UI: runs as AG-UI event streams, checked with the official @ag-ui/client (npm) and
through the ag-ui-protocol models."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("ag_ui")

from vivace import Agent, RunContext, tool
from vivace.agui.endpoint import agui_app, agui_events, json_patch
from vivace.teams import Team
from vivace.testing import ScriptedModel, Stream, call

JS = Path(__file__).resolve().parents[1] / "js"


def add_item(ctx: RunContext[Any], item: str) -> str:
    """Add an item to the cart."""
    ctx.session_state.setdefault("cart", []).append(item)
    return f"added {item}"


@pytest.fixture
def serve() -> Iterator[Any]:
    import uvicorn

    servers: list[Any] = []

    def start(app: Any) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}/"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_official_js_client_runs_a_tool_call_and_a_state_change(
    js_modules: Path, serve: Any
) -> None:
    agent = Agent(
        model=ScriptedModel(
            [call("add_item", {"item": "apple"}, id="c1"), Stream("Added ", "it.")]
        ),
        tools=[add_item],
        name="shop",
    )
    url = serve(agui_app(agent))
    out = subprocess.run(
        ["node", str(JS / "agui_client.mjs"), url, "buy an apple", '{"cart": ["pear"]}'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    types = [e["type"] for e in data["events"]]
    assert types == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "STEP_STARTED",
        "STEP_FINISHED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "STATE_DELTA",
        "STEP_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "STEP_FINISHED",
        "RUN_FINISHED",
    ]
    by_type = {e["type"]: e for e in data["events"]}
    assert by_type["STATE_SNAPSHOT"]["snapshot"] == {"cart": ["pear"]}
    assert by_type["STATE_DELTA"]["delta"] == [
        {"op": "replace", "path": "/cart", "value": ["pear", "apple"]}
    ]
    assert by_type["TOOL_CALL_START"]["toolCallName"] == "add_item"
    assert json.loads(by_type["TOOL_CALL_ARGS"]["delta"]) == {"item": "apple"}
    assert by_type["TOOL_CALL_RESULT"]["content"] == "added apple"
    assert data["state"] == {"cart": ["pear", "apple"]}  # the client applied snapshot + delta
    assert data["result"] == "Added it."
    # every event names the Vivace run and its trace (the official client keeps metadata)
    metas = [e.get("metadata") or {} for e in data["events"]]
    traces = {m.get("trace_id") for m in metas}
    assert len(traces) == 1 and len(str(next(iter(traces)))) == 32, metas
    assert len({m.get("vivace_run_id") for m in metas}) == 1
    roles = [(m["role"], m.get("content")) for m in data["newMessages"]]
    assert ("tool", "added apple") in roles and ("assistant", "Added it.") in roles


async def test_members_appear_as_subagents() -> None:
    member = Agent(model=ScriptedModel([Stream("member ", "text")]), name="helper")
    team = Team(
        members=[member], model=ScriptedModel([call("helper", {"task": "t"}, id="L1"), "done"])
    )
    body = {
        "threadId": "t1",
        "runId": "r1",
        "messages": [{"id": "1", "role": "user", "content": "hi"}],
    }
    events = [e.model_dump(by_alias=True, exclude_none=True) async for e in agui_events(team, body)]
    types = [e["type"] for e in events]
    started = next(e for e in events if e["type"] == "SUBAGENT_STARTED")
    assert started["name"] == "helper" and started["parentToolCallId"] == "L1"
    sub = started["subagentRunId"]
    text = [
        e["delta"]
        for e in events
        if e["type"] == "TEXT_MESSAGE_CONTENT" and e.get("subagentRunId") == sub
    ]
    assert text == ["member ", "text"]
    finished = next(e for e in events if e["type"] == "SUBAGENT_FINISHED")
    assert finished["subagentRunId"] == sub and finished["outcome"]["type"] == "success"
    assert (
        types.index("SUBAGENT_STARTED")
        < types.index("SUBAGENT_FINISHED")
        < types.index("RUN_FINISHED")
    )
    assert events[-1]["result"] == "done"


async def test_a_pause_is_an_interrupt_and_failures_are_run_errors() -> None:
    @tool(requires_approval=True)
    def wire(amount: int) -> str:
        return "ok"

    body = {
        "threadId": "t",
        "runId": "r",
        "messages": [{"id": "1", "role": "user", "content": "x"}],
    }
    agent = Agent(model=ScriptedModel([call("wire", {"amount": 3}, id="w1")]), tools=[wire])
    events = [
        e.model_dump(by_alias=True, exclude_none=True) async for e in agui_events(agent, body)
    ]
    last = events[-1]
    assert last["type"] == "RUN_FINISHED" and last["outcome"]["type"] == "interrupt"
    assert last["outcome"]["interrupts"][0]["toolCallId"] == "w1"
    failing = Agent(model=ScriptedModel([RuntimeError("model down")]))
    events = [
        e.model_dump(by_alias=True, exclude_none=True) async for e in agui_events(failing, body)
    ]
    assert events[0]["type"] == "RUN_STARTED"
    assert events[-1]["type"] == "RUN_ERROR" and "model down" in events[-1]["message"]
    trace = events[-1]["metadata"]["trace_id"]  # a client error leads to the trace
    assert len(trace) == 32 and all(e["metadata"]["trace_id"] == trace for e in events)


async def test_history_from_messages_and_bad_bodies() -> None:
    model = ScriptedModel(["second answer"])
    agent = Agent(model=model)
    body = {
        "threadId": "t",
        "runId": "r",
        "messages": [
            {"id": "1", "role": "user", "content": "first"},
            {"id": "2", "role": "assistant", "content": "first answer"},
            {"id": "3", "role": "user", "content": "second"},
        ],
    }
    [_ async for _ in agui_events(agent, body)]
    assert [m.text for m in model.requests[0].messages] == ["first", "first answer", "second"]
    transport = httpx.ASGITransport(app=agui_app(agent))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        bad = await client.post("/", json={"threadId": "t"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
        junk = await client.post("/", content=b"{not json")
        assert junk.status_code == 422


def test_json_patch() -> None:
    assert json_patch({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d/e": 4}) == [
        {"op": "replace", "path": "/b/c", "value": 3},
        {"op": "add", "path": "/d~1e", "value": 4},
    ]
    assert json_patch({"x": 1}, {}) == [{"op": "remove", "path": "/x"}]
    assert json_patch({}, {}) == []
