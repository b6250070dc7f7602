"""A team is served like an agent: the same routes, SSE (member events included, nested,
gap-free) and sessions."""

from __future__ import annotations

import json
from typing import Any

import httpx

from vivace import Agent
from vivace.teams import Team
from vivace.testing import ScriptedModel, Stream, call


def _frames(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in fields:
            out.append(
                {
                    "event": fields.get("event"),
                    "id": fields.get("id"),
                    "data": json.loads(fields["data"]),
                }
            )
    return out


async def test_team_over_http_json_and_sse_with_sessions() -> None:
    from vivace.server import VivaceApp
    from vivace.storage import InMemoryStorage

    member = Agent(model=ScriptedModel([Stream("sunny ", "today")] * 4), name="weather")
    team = Team(
        name="desk",
        members=[member],
        mode="route",
        model=ScriptedModel([call("weather", {"task": "forecast"})] * 4),
    )
    app = VivaceApp(agents=[team], storage=InMemoryStorage(), auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        agents = (await c.get("/agents")).json()
        assert "desk" in json.dumps(agents)
        r = await c.post("/agents/desk/runs", json={"input": "weather?", "session_id": "s1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "completed" and body["output"] == "sunny today"
        assert body["usage"]["requests"] == 2  # leader + member
        r = await c.post(
            "/agents/desk/runs", json={"input": "again", "session_id": "s1", "stream": True}
        )
        frames = _frames(r.text)
        assert [int(f["id"]) for f in frames] == list(range(len(frames)))  # gap-free
        nested = [f["data"] for f in frames if f["event"] == "nested_event"]
        inner = [n["event"] for n in nested]
        assert [e["seq"] for e in inner] == list(range(len(inner)))  # the member's, all once
        assert inner[0]["type"] == "run_started" and inner[-1]["type"] == "run_completed"
        assert {tuple(n["path"]) for n in nested} == {("weather",)}
        assert frames[-1]["event"] == "run_completed"
        session = await c.get("/sessions/s1")
        assert session.status_code == 200 and "s1" in session.text
        assert len(await app.storage.sessions.list_runs("s1")) == 2  # the team's two runs
