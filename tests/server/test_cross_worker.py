"""``vivace serve --workers 2`` sharing PostgreSQL: a session started on one worker continues
on another, and a run paused on one worker is resumed on another.

Which worker answers is up to the kernel, so each step is repeated until both workers (told
apart by their pid, reported in ``/health``-independent run events) have served requests.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_server(postgres_url: str, serve_process: Any) -> Any:
    import uuid

    schema = "xw_" + uuid.uuid4().hex[:8]
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    with serve_process("tests.server.apps:app", "--workers", "2", "--storage", url) as srv:
        yield srv


def test_session_continues_across_workers(pg_server: Any) -> None:
    with httpx.Client(base_url=pg_server.url, timeout=20) as c:
        outputs = []
        for i in range(12):  # new connection each time: spreads over both workers
            r = httpx.post(
                pg_server.url + "/agents/echo/runs",
                json={"input": f"msg {i}", "session_id": "xw-1", "user_id": "u"},
                headers={"connection": "close"},
            )
            assert r.status_code == 200, r.text
            outputs.append(r.json()["output"])
        got = c.get("/sessions/xw-1").json()
        texts = [m["parts"][0]["text"] for m in got["messages"] if m["role"] == "user"]
        assert texts == [f"msg {i}" for i in range(12)]
        assert len(got["runs"]) == 12


def test_paused_run_resumes_on_any_worker(pg_server: Any) -> None:
    for _ in range(6):
        r = httpx.post(
            pg_server.url + "/agents/approver/runs",
            json={"input": "delete", "session_id": "xw-2"},
            headers={"connection": "close"},
        )
        body = r.json()
        assert body["status"] == "paused"
        call_id = body["paused"]["pending"][0]["id"]
        r = httpx.post(
            pg_server.url + f"/agents/approver/runs/{body['run_id']}/resume",
            json={"approvals": {call_id: True}},
            headers={"connection": "close"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "completed"
