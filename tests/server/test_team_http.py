"""A team is served like an agent by a live ``vivace serve``, over real HTTP with the
server's auth: the run routes (JSON and SSE, the member's events nested and gap-free), its
sessions, and the protocol endpoints (AG-UI subagent events, A2A, MCP - the last in
test_mcp_served)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ServeProcess, parse_sse

KEY = "team-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    db = tmp_path_factory.mktemp("team") / "v.db"
    with ServeProcess(
        "tests.server.protocol_app:app",
        "--storage",
        f"sqlite:///{db}",
        env={"VIVACE_API_KEY": KEY},
    ) as srv:
        yield srv


def test_team_runs_streams_and_sessions(live: ServeProcess) -> None:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=30) as http:
        assert (
            http.post(
                "/agents/desk/runs", json={"input": "x"}, headers={"Authorization": ""}
            ).status_code
            == 401
        )
        info = http.get("/agents/desk").json()
        assert [t["name"] for t in info["tools"]] == ["weather"]  # the member, as a tool
        r = http.post("/agents/desk/runs", json={"input": "weather?", "session_id": "team-1"})
        body = r.json()
        assert body["status"] == "completed" and body["output"] == "sunny today"
        assert body["usage"]["requests"] == 2  # the leader's and the member's
        r = http.post(
            "/agents/desk/runs", json={"input": "again", "session_id": "team-1", "stream": True}
        )
        frames = parse_sse(r.text)
        assert [int(f["id"]) for f in frames] == list(range(len(frames)))  # gap-free
        nested = [f["data"] for f in frames if f["event"] == "nested_event"]
        inner = [n["event"] for n in nested]
        assert [e["seq"] for e in inner] == list(range(len(inner)))  # the member's own, once
        assert inner[0]["type"] == "run_started" and inner[-1]["type"] == "run_completed"
        assert {tuple(n["path"]) for n in nested} == {("weather",)}
        assert inner[0]["parent_run_id"] == frames[0]["data"]["run_id"]
        assert frames[-1]["event"] == "run_completed"
        # reconnect to the team run's events, like any run
        run_id = frames[0]["data"]["run_id"]
        again = parse_sse(
            http.get(f"/agents/desk/runs/{run_id}/events", headers={"Last-Event-ID": "2"}).text
        )
        assert [int(f["id"]) for f in again] == list(range(3, len(frames)))
        session = http.get("/sessions/team-1").json()
        assert [r["status"] for r in session["runs"]] == ["completed", "completed"]
        assert [m["parts"][0]["text"] for m in session["messages"] if m["role"] == "user"] == [
            "weather?",
            "again",
        ]


def test_team_over_agui_and_a2a(live: ServeProcess) -> None:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=30) as http:
        r = http.post(
            "/agents/desk/agui",
            json={
                "threadId": "team-2",
                "runId": "r1",
                "messages": [{"id": "1", "role": "user", "content": "weather?"}],
            },
        )
        events = [f["data"] for f in parse_sse(r.text)]
        types = [e["type"] for e in events]
        started = next(e for e in events if e["type"] == "SUBAGENT_STARTED")
        assert started["name"] == "weather"
        assert types.index("SUBAGENT_STARTED") < types.index("SUBAGENT_FINISHED")
        assert events[-1]["type"] == "RUN_FINISHED" and events[-1]["result"] == "sunny today"
        send: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
            },
        }
        task = http.post("/a2a/desk/", json=send, headers={"A2A-Version": "1.0"}).json()
        assert task["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        assert json.dumps(task["result"]["task"]["artifacts"]).count("sunny today") == 1
