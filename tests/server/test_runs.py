"""Agents and runs: JSON results, SSE streams, reconnect, cancel, resume, uploads."""

from __future__ import annotations

import base64
import threading
from typing import Any

import httpx

from .conftest import parse_sse

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()


async def test_health_and_agents(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await client.get("/agents")
    ids = [a["id"] for a in r.json()["agents"]]
    assert ids == ["echo", "weather", "approver", "gated", "broken", "transcript"]
    r = await client.get("/agents/weather")
    info = r.json()
    assert info["model"] == "test/get_weather-model"
    (tool,) = info["tools"]
    assert tool["name"] == "get_weather"
    assert tool["parameters"]["properties"]["city"]["type"] == "string"
    assert tool["parameters"]["required"] == ["city"]
    assert tool["requires_approval"] is False
    r = await client.get("/agents/approver")
    assert r.json()["tools"][0]["requires_approval"] is True


async def test_json_run_with_tool_call(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/weather/runs", json={"input": "weather?", "user_id": "u1"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed"
    assert body["output"] == "done: sunny in Paris"
    assert body["user_id"] == "u1"
    assert r.headers["x-vivace-run-id"] == body["run_id"]
    kinds = [p["kind"] for m in body["messages"] for p in m["parts"]]
    assert kinds == ["text", "tool_call", "tool_result", "text"]


async def test_sse_stream_frames(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/weather/runs", json={"input": "weather?", "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(r.text)
    types = [f["event"] for f in frames]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert "tool_call_started" in types and "tool_call_completed" in types
    assert [int(f["id"]) for f in frames] == list(range(len(frames)))
    assert all(f["data"]["seq"] == int(f["id"]) for f in frames)
    assert all(f["data"]["type"] == f["event"] for f in frames)
    text = "".join(f["data"]["text"] for f in frames if f["event"] == "text_delta")
    assert text == "done: sunny in Paris"


async def test_reconnect_after_completion_gets_the_rest(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/weather/runs", json={"input": "weather?", "stream": True})
    full = parse_sse(r.text)
    run_id = r.headers["x-vivace-run-id"]
    r2 = await client.get(f"/agents/weather/runs/{run_id}/events", headers={"Last-Event-ID": "3"})
    rest = parse_sse(r2.text)
    assert [f["data"] for f in rest] == [f["data"] for f in full[4:]]
    r3 = await client.get(f"/agents/weather/runs/{run_id}/events?after=-1")
    assert [f["data"] for f in parse_sse(r3.text)] == [f["data"] for f in full]


def test_reconnect_mid_run_no_gaps_no_duplicates(
    make_app: Any, thread_server: Any, gate: threading.Event
) -> None:
    """Drop the stream while the run is blocked in a tool, reconnect, get exactly the rest."""
    with thread_server(make_app()) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        first: list[dict[str, Any]] = []
        with c.stream("POST", "/agents/gated/runs", json={"input": "go", "stream": True}) as resp:
            run_id = resp.headers["x-vivace-run-id"]
            buf = ""
            for chunk in resp.iter_text():
                buf += chunk
                first = parse_sse(buf.rsplit("\n\n", 1)[0] + "\n\n") if "\n\n" in buf else []
                if any(f["event"] == "tool_call_started" for f in first):
                    break  # disconnect while the tool is still blocked
        assert first[-1]["event"] == "tool_call_started"
        last_id = first[-1]["id"]
        gate.set()
        r = c.get(f"/agents/gated/runs/{run_id}/events", headers={"Last-Event-ID": last_id})
        rest = parse_sse(r.text)
        seqs = [f["data"]["seq"] for f in first + rest]
        assert seqs == list(range(len(seqs)))
        assert rest[-1]["event"] == "run_completed"
        assert rest[-1]["data"]["output"] == "done: gate open"


def test_cancel_running_run(make_app: Any, thread_server: Any, gate: threading.Event) -> None:
    with thread_server(make_app()) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        with c.stream("POST", "/agents/gated/runs", json={"input": "go", "stream": True}) as resp:
            run_id = resp.headers["x-vivace-run-id"]
            buf = ""
            for chunk in resp.iter_text():
                buf += chunk
                if "tool_call_started" in buf:
                    break
        r = c.post(f"/agents/gated/runs/{run_id}/cancel")
        assert r.status_code == 200 and r.json() == {"run_id": run_id, "cancelled": True}
        gate.set()
        events = parse_sse(c.get(f"/agents/gated/runs/{run_id}/events").text)
        assert events[-1]["event"] == "run_cancelled"
        again = c.post(f"/agents/gated/runs/{run_id}/cancel")
        assert again.status_code == 409


async def test_cancel_unknown_run_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/echo/runs/nope/cancel")
    assert r.status_code == 404 and r.json()["error"]["code"] == "run_not_found"


async def test_resume_paused_run_with_approval(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/approver/runs", json={"input": "delete it"})
    body = r.json()
    assert body["status"] == "paused"
    (pending,) = body["paused"]["pending"]
    run_id = body["run_id"]
    bad = await client.post(
        f"/agents/approver/runs/{run_id}/resume", json={"approvals": {"other": True}}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "resume_error"
    r = await client.post(
        f"/agents/approver/runs/{run_id}/resume",
        json={"approvals": {pending["id"]: {"approve": True, "arguments": {"path": "/tmp/y"}}}},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "completed"
    assert r.json()["output"] == "done: deleted /tmp/y"
    gone = await client.post(
        f"/agents/approver/runs/{run_id}/resume", json={"approvals": {pending["id"]: True}}
    )
    assert gone.status_code == 404


async def test_resume_with_rejection_streams(client: httpx.AsyncClient) -> None:
    body = (await client.post("/agents/approver/runs", json={"input": "x"})).json()
    call_id = body["paused"]["pending"][0]["id"]
    r = await client.post(
        f"/agents/approver/runs/{body['run_id']}/resume",
        json={"approvals": {call_id: {"approve": False, "reason": "no"}}, "stream": True},
    )
    frames = parse_sse(r.text)
    done = next(f for f in frames if f["event"] == "tool_call_completed")["data"]
    assert done["is_error"] is True and "no" in done["result"]
    assert frames[-1]["data"]["output"].startswith("done: rejected")


async def test_resume_on_wrong_agent_is_404(client: httpx.AsyncClient) -> None:
    body = (await client.post("/agents/approver/runs", json={"input": "x"})).json()
    call_id = body["paused"]["pending"][0]["id"]
    r = await client.post(
        f"/agents/echo/runs/{body['run_id']}/resume", json={"approvals": {call_id: True}}
    )
    assert r.status_code == 404


async def test_content_parts_with_base64_and_url(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/agents/echo/runs",
        json={
            "input": [
                {"kind": "text", "text": "look"},
                {"kind": "image", "data": PNG, "media_type": "image/png"},
                {"kind": "image", "url": "https://example.com/cat.jpg"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    parts = r.json()["messages"][0]["parts"]
    assert [p["kind"] for p in parts] == ["text", "image", "image"]
    assert parts[1]["data"] == PNG and parts[1]["media_type"] == "image/png"
    assert parts[2]["media_type"] == "image/jpeg"


async def test_multipart_upload(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/agents/echo/runs",
        data={"input": "what is this", "session_id": "s1"},
        files=[
            ("files", ("cat.png", b"\x89PNG fake", "image/png")),
            ("files", ("notes.txt", b"hello", "text/plain")),
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"] == "echo: what is this"
    assert body["session_id"] == "s1"
    parts = body["messages"][0]["parts"]
    assert [(p["kind"], p.get("media_type")) for p in parts] == [
        ("text", None),
        ("image", "image/png"),
        ("file", "text/plain"),
    ]
    assert base64.b64decode(parts[1]["data"]) == b"\x89PNG fake"


async def test_multipart_stream(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/echo/runs", data={"input": "hi", "stream": "true"})
    frames = parse_sse(r.text)
    assert frames[-1]["data"]["output"] == "echo: hi"


async def test_a_lone_surrogate_in_a_run_comes_back_as_valid_json() -> None:
    # a model (JSON escapes) or a tool (a broken decoder) can hand over an unpaired surrogate,
    # which UTF-8 cannot hold: the answer writes it as its JSON escape, in the JSON result
    # and in the event stream
    from vivace import Agent
    from vivace.server import VivaceApp
    from vivace.storage import open_storage
    from vivace.testing import FunctionModel

    half = "half \ud83d of an emoji, 天气 😀"
    agent = Agent(model=FunctionModel(lambda messages, request: half), name="odd")
    app = VivaceApp(agents=[agent], storage=open_storage("memory://"), auth=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/agents/odd/runs", json={"input": "hi"})
        assert r.status_code == 200
        r.content.decode("utf-8")  # valid UTF-8
        assert "\\ud83d" in r.text and r.json()["output"] == half
        r = await c.post("/agents/odd/runs", json={"input": "hi", "stream": True})
        assert r.status_code == 200
        r.content.decode("utf-8")
        assert parse_sse(r.text)[-1]["data"]["output"] == half
