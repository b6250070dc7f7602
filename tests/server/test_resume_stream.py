"""A streamed resume starts after the pause the client has (issue 8 item 2); the run keeps one
gap-free ``seq`` across the pause. Real HTTP (uvicorn)."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import parse_sse


def test_streamed_resume_starts_after_the_pause(make_app: Any, thread_server: Any) -> None:
    with thread_server(make_app()) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        first = parse_sse(
            c.post("/agents/approver/runs", json={"input": "delete", "stream": True}).text
        )
        assert first[-1]["event"] == "run_paused"  # a client reading until the pause
        paused = first[-1]["data"]
        run_id, pause_seq = paused["run_id"], paused["seq"]
        call_id = paused["pending"][0]["id"]
        r = c.post(
            f"/agents/approver/runs/{run_id}/resume",
            json={"approvals": {call_id: True}, "stream": True},
        )
        rest = parse_sse(r.text)
        assert rest[0]["event"] == "run_resumed"  # nothing the client already has
        assert all(f["event"] != "run_paused" for f in rest)
        assert rest[-1]["event"] == "run_completed"
        seqs = [f["data"]["seq"] for f in first + rest]
        assert seqs == list(range(len(seqs)))  # one gap-free seq across the pause
        assert int(rest[0]["id"]) == pause_seq + 1


def test_a_resume_stream_can_ask_for_a_replay(make_app: Any, thread_server: Any) -> None:
    with thread_server(make_app()) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        body = c.post("/agents/approver/runs", json={"input": "delete"}).json()
        run_id, call_id = body["run_id"], body["paused"]["pending"][0]["id"]
        r = c.post(
            f"/agents/approver/runs/{run_id}/resume",
            json={"approvals": {call_id: True}, "stream": True},
            headers={"Last-Event-ID": "-1"},
        )
        frames = parse_sse(r.text)
        types = [f["event"] for f in frames]
        assert types[0] == "run_started" and "run_paused" in types
        assert types[-1] == "run_completed"
        assert [f["data"]["seq"] for f in frames] == list(range(len(frames)))
