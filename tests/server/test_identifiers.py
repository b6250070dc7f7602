"""Identifiers from real users (issue 8 item 4), through real HTTP (uvicorn): any text a
person can type round-trips (percent-encoded UTF-8 in headers); control characters and NUL
are a 400 naming the field, before any run starts - in bodies, forms, paths, queries and
headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from vivace.server import VivaceApp
from vivace.server.ids import decode_header, encode_header
from vivace.storage import SQLiteStorage

from .apps import make_agents
from .conftest import parse_sse

TYPED = ["张三", "💩 chat", "a/b", "50% off", "tab\u00a0nbsp", "Ünïcødé ✓"]
BAD = ["line\nbreak", "crlf\r\nx-evil: 1", "nul\x00byte", "bell\x07"]


@pytest.fixture
def srv(tmp_path: Path, thread_server: Any) -> Iterator[Any]:
    app = VivaceApp(agents=make_agents(), storage=SQLiteStorage(tmp_path / "i.db"), auth=False)
    with thread_server(app) as s:
        yield s


def _url_id(value: str) -> str:
    return quote(value, safe="")


def _bad(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_identifier" and err["param"] == field, err


def _stored_sessions(url: str) -> list[str]:
    return [s["session_id"] for s in httpx.get(f"{url}/sessions").json()["sessions"]]


@pytest.mark.parametrize("sid", TYPED)
def test_typed_session_ids_round_trip(srv: Any, sid: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=20) as c:
        r = c.post("/agents/echo/runs", json={"input": "hi", "session_id": sid, "user_id": sid})
        assert r.status_code == 200, r.text
        assert r.json()["session_id"] == sid and r.json()["user_id"] == sid
        assert unquote(r.headers["x-vivace-session-id"]) == sid
        r = c.post(
            "/agents/echo/runs",
            json={"input": "again", "session_id": sid, "user_id": sid, "stream": True},
        )
        assert unquote(r.headers["x-vivace-session-id"]) == sid
        assert parse_sse(r.text)[0]["data"]["session_id"] == sid
        r = c.post("/agents/echo/runs", data={"input": "form", "session_id": sid, "user_id": sid})
        assert r.status_code == 200 and r.json()["session_id"] == sid
        # OpenAI: the session in the (encoded) header, the user in ``user``
        r = c.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}], "user": sid},
            headers={"X-Vivace-Session-Id": encode_header(sid)},
        )
        assert r.status_code == 200, r.text
        assert decode_header(r.headers["x-vivace-session-id"], "h") == sid
        # raw UTF-8 in the header is accepted too
        r = c.post(
            "/v1/responses",
            json={"model": "echo", "input": "x", "user": sid},
            headers={"X-Vivace-Session-Id": sid.encode()},
        )
        assert r.status_code == 200, r.text
        session = c.get(f"/sessions/{_url_id(sid)}")
        assert session.status_code == 200, session.text
        assert session.json()["session_id"] == sid and len(session.json()["runs"]) == 5
        assert sid in [
            s["session_id"] for s in c.get("/sessions", params={"user_id": sid}).json()["sessions"]
        ]
        wm = c.put(f"/sessions/{_url_id(sid)}/working-memory", json={"content": "note"})
        assert wm.status_code == 200
        assert c.get(f"/users/{_url_id(sid)}/working-memory").status_code == 200
        assert c.delete(f"/sessions/{_url_id(sid)}").json() == {"deleted": True}


@pytest.mark.parametrize("sid", BAD)
def test_control_characters_are_a_400_before_any_run(srv: Any, sid: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=20) as c:
        _bad(c.post("/agents/echo/runs", json={"input": "x", "session_id": sid}), "session_id")
        _bad(c.post("/agents/echo/runs", json={"input": "x", "user_id": sid}), "user_id")
        _bad(
            c.post("/agents/echo/runs", json={"input": "x", "session_id": sid, "stream": True}),
            "session_id",
        )
        _bad(c.post("/agents/echo/runs", data={"input": "x", "session_id": sid}), "session_id")
        _bad(c.post("/agents/echo/runs", data={"input": "x", "user_id": sid}), "user_id")
        chat = {"model": "echo", "messages": [{"role": "user", "content": "x"}], "user": sid}
        _bad(c.post("/v1/chat/completions", json=chat), "user")
        _bad(c.post("/v1/responses", json={"model": "echo", "input": "x", "user": sid}), "user")
        # headers: percent-encoded (a raw control character cannot even be sent)
        h = {"X-Vivace-Session-Id": quote(sid, safe="")}
        chat.pop("user")
        _bad(c.post("/v1/chat/completions", json=chat, headers=h), "x-vivace-session-id")
        _bad(
            c.post(
                "/agents/echo/runs", json={"input": "x"}, headers={"Idempotency-Key": quote(sid)}
            ),
            "idempotency-key",
        )
        # paths and queries
        _bad(c.get(f"/sessions/{_url_id(sid)}"), "session_id")
        _bad(c.delete(f"/sessions/{_url_id(sid)}"), "session_id")
        _bad(c.get(f"/sessions/{_url_id(sid)}/working-memory"), "session_id")
        _bad(c.get(f"/users/{_url_id(sid)}/memories"), "user_id")
        _bad(c.get(f"/agents/{_url_id(sid)}"), "agent_id")
        _bad(c.get(f"/agents/echo/runs/{_url_id(sid)}/events"), "run_id")
        _bad(c.get("/sessions", params={"user_id": sid}), "user_id")
        _bad(c.get("/sessions", params={"agent_id": sid}), "agent_id")
    assert _stored_sessions(srv.url) == []  # nothing ran


def test_nul_in_a_path(srv: Any) -> None:
    _bad(httpx.get(f"{srv.url}/sessions/a%00b"), "session_id")
    _bad(httpx.get(f"{srv.url}/sessions/a%2Fb%00"), "session_id")


def test_header_encoding() -> None:
    assert encode_header("plain-id_1.2") == "plain-id_1.2"  # printable ASCII: unchanged
    for value in [*TYPED, "100%", "%41"]:
        encoded = encode_header(value)
        encoded.encode("latin-1")  # travels in a header
        assert decode_header(encoded, "h") == value
