"""Continuing another user's session is a 404 - the answer for a session that does not exist -
on every route that starts a run, with no run started and nothing logged as an internal error
(issue 8 item 3). Real HTTP (uvicorn), JWT users and open mode."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest

from vivace.server import JWTAuth, VivaceApp
from vivace.storage import SQLiteStorage

from .apps import make_agents

SECRET = "ownership-test-secret-long-enough-for-hs256"


def tok(sub: str) -> dict[str, str]:
    t = jwt.encode(
        {"sub": sub, "scope": "runs sessions", "exp": int(time.time()) + 300},
        SECRET,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture
def srv(tmp_path: Path, thread_server: Any) -> Iterator[Any]:
    app = VivaceApp(
        agents=make_agents(), storage=SQLiteStorage(tmp_path / "o.db"), auth=JWTAuth(SECRET)
    )
    with thread_server(app) as s:
        yield s


def _runs(url: str, session_id: str, who: str) -> int:
    r = httpx.get(f"{url}/sessions/{session_id}", headers=tok(who))
    return len(r.json()["runs"]) if r.status_code == 200 else 0


def _is_missing_session(r: httpx.Response, sid: str) -> None:
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "session_not_found" and err["param"] == "session_id"
    assert "alice" not in r.text


def test_another_users_session_is_404_on_every_run_route(
    srv: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = srv.url
    r = httpx.post(
        f"{url}/agents/echo/runs", json={"input": "hi", "session_id": "s-a"}, headers=tok("alice")
    )
    assert r.status_code == 200 and r.json()["status"] == "completed"
    nobody = httpx.get(f"{url}/sessions/no-such-session", headers=tok("bob"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        json_run = httpx.post(
            f"{url}/agents/echo/runs", json={"input": "x", "session_id": "s-a"}, headers=tok("bob")
        )
        sse_run = httpx.post(
            f"{url}/agents/echo/runs",
            json={"input": "x", "session_id": "s-a", "stream": True},
            headers=tok("bob"),
        )
        form_run = httpx.post(
            f"{url}/agents/echo/runs",
            data={"input": "x", "session_id": "s-a", "stream": "true"},
            headers=tok("bob"),
        )
        bob = {**tok("bob"), "X-Vivace-Session-Id": "s-a"}
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
            headers=bob,
        )
        resp = httpx.post(f"{url}/v1/responses", json={"model": "echo", "input": "x"}, headers=bob)
    for r in (json_run, sse_run, form_run, chat, resp):
        _is_missing_session(r, "s-a")
        # exactly the answer for a session that does not exist (but for the request's trace)
        error, expected = r.json()["error"], nobody.json()["error"]
        assert error.pop("trace_id") == r.headers["x-vivace-trace-id"]
        assert expected.pop("trace_id") == nobody.headers["x-vivace-trace-id"]
        assert error == {**expected, "message": "no session 's-a'"}
    assert _runs(url, "s-a", "alice") == 1  # no run was started or stored
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]


def test_the_official_client_gets_a_404_once(srv: Any) -> None:
    httpx.post(
        f"{srv.url}/agents/echo/runs",
        json={"input": "hi", "session_id": "s-b"},
        headers=tok("alice"),
    )
    t = tok("bob")["Authorization"].split()[1]
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=t)  # default retries
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"X-Vivace-Session-Id": "s-b"},
        )
    assert _runs(srv.url, "s-b", "alice") == 1


def test_open_mode_user_id_mismatch_is_404(
    tmp_path: Path, thread_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = VivaceApp(agents=make_agents(), storage=SQLiteStorage(tmp_path / "p.db"), auth=False)
    with thread_server(app) as s, httpx.Client(base_url=s.url) as c:
        ok = c.post("/agents/echo/runs", json={"input": "hi", "session_id": "s", "user_id": "u1"})
        assert ok.json()["status"] == "completed"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            for body in (
                {"input": "x", "session_id": "s", "user_id": "u2"},
                {"input": "x", "session_id": "s"},  # no user: not the owner either
                {"input": "x", "session_id": "s", "user_id": "u2", "stream": True},
            ):
                _is_missing_session(c.post("/agents/echo/runs", json=body), "s")
        assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
        assert len(c.get("/sessions/s").json()["runs"]) == 1
