"""Sessions and memory routes over real storage (in-memory and SQLite), with user isolation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from vivace.messages import Message
from vivace.server import JWTAuth, VivaceApp
from vivace.storage import open_storage
from vivace.storage.records import RunRecord, SessionRecord

from .apps import make_agents

SECRET = "sessions-test-secret-long-enough-0123456789"


def _tok(sub: str, scope: str = "runs sessions") -> dict[str, str]:
    t = jwt.encode({"sub": sub, "scope": scope, "exp": int(time.time()) + 60}, SECRET)
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture(params=["memory", "sqlite"])
async def storage(request: Any, tmp_path: Path) -> AsyncIterator[Any]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    st = open_storage(url)
    await st.setup()
    for sid, user in (("s-alice", "alice"), ("s-bob", "bob")):
        await st.sessions.create_session(SessionRecord(sid, agent_id="echo", user_id=user))
        rec = RunRecord(f"r-{sid}", sid, agent_id="echo", user_id=user)
        await st.sessions.start_run(rec)
        rec.status = "completed"
        rec.messages = [Message.user(f"hi from {user}"), Message.assistant(f"echo: hi from {user}")]
        rec.output = f"echo: hi from {user}"
        await st.sessions.finish_run(rec, state_changes={"n": 1})
    yield st
    await st.close()


@pytest.fixture
async def c(storage: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = VivaceApp(agents=make_agents(), storage=storage, auth=JWTAuth(SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as cl:
        yield cl


async def test_list_and_get_own_sessions(c: httpx.AsyncClient) -> None:
    r = await c.get("/sessions", headers=_tok("alice"))
    assert r.status_code == 200
    assert [s["session_id"] for s in r.json()["sessions"]] == ["s-alice"]
    r = await c.get("/sessions/s-alice", headers=_tok("alice"))
    body = r.json()
    assert body["state"] == {"n": 1}
    assert [m["parts"][0]["text"] for m in body["messages"]] == [
        "hi from alice",
        "echo: hi from alice",
    ]
    assert [run["run_id"] for run in body["runs"]] == ["r-s-alice"]
    assert body["runs"][0]["status"] == "completed"


async def test_other_users_sessions_are_invisible(c: httpx.AsyncClient) -> None:
    alice = _tok("alice")
    assert (await c.get("/sessions/s-bob", headers=alice)).status_code == 404
    assert (await c.patch("/sessions/s-bob", json={"name": "x"}, headers=alice)).status_code == 404
    assert (await c.delete("/sessions/s-bob", headers=alice)).status_code == 404
    r = await c.get("/sessions?user_id=bob", headers=alice)
    assert r.status_code == 403
    assert (await c.get("/sessions/s-bob/working-memory", headers=alice)).status_code == 404
    assert (await c.get("/users/bob/memories", headers=alice)).status_code == 403
    # bob still has his session
    assert (await c.get("/sessions/s-bob", headers=_tok("bob"))).status_code == 200
    # an admin sees everyone
    r = await c.get("/sessions", headers=_tok("root", "admin"))
    assert {s["session_id"] for s in r.json()["sessions"]} == {"s-alice", "s-bob"}


async def test_rename_state_delete(c: httpx.AsyncClient) -> None:
    h = _tok("alice")
    r = await c.patch(
        "/sessions/s-alice",
        json={"name": "Trip", "state": {"city": "Paris"}, "delete_state": ["n"]},
        headers=h,
    )
    assert r.status_code == 200
    assert r.json()["name"] == "Trip" and r.json()["state"] == {"city": "Paris"}
    got = (await c.get("/sessions/s-alice", headers=h)).json()
    assert got["name"] == "Trip" and got["state"] == {"city": "Paris"}
    assert (await c.delete("/sessions/s-alice", headers=h)).json() == {"deleted": True}
    assert (await c.get("/sessions/s-alice", headers=h)).status_code == 404


async def test_pagination_and_filters(c: httpx.AsyncClient) -> None:
    admin = _tok("root", "admin")
    page1 = (await c.get("/sessions?limit=1", headers=admin)).json()
    page2 = (await c.get("/sessions?limit=1&offset=1", headers=admin)).json()
    assert len(page1["sessions"]) == 1 and len(page2["sessions"]) == 1
    assert page1["sessions"][0]["session_id"] != page2["sessions"][0]["session_id"]
    assert (await c.get("/sessions?agent_id=other", headers=admin)).json()["sessions"] == []
    assert (await c.get("/sessions?limit=0", headers=admin)).status_code == 400
    assert (await c.get("/sessions?limit=abc", headers=admin)).status_code == 400


async def test_working_memory(c: httpx.AsyncClient) -> None:
    h = _tok("alice")
    assert (await c.get("/sessions/s-alice/working-memory", headers=h)).json() == {"content": None}
    r = await c.put(
        "/sessions/s-alice/working-memory", json={"content": "# Notes\n- likes tea"}, headers=h
    )
    assert r.status_code == 200
    got = await c.get("/sessions/s-alice/working-memory", headers=h)
    assert got.json()["content"] == "# Notes\n- likes tea"
    await c.put("/users/alice/working-memory", json={"content": "user-level"}, headers=h)
    assert (await c.get("/users/alice/working-memory", headers=h)).json()["content"] == "user-level"
    await c.put("/users/alice/working-memory", json={"content": None}, headers=h)
    assert (await c.get("/users/alice/working-memory", headers=h)).json()["content"] is None


async def test_user_memories_crud(c: httpx.AsyncClient) -> None:
    h = _tok("alice")
    r = await c.post(
        "/users/alice/memories",
        json={"content": "Alice lives in Lyon", "topics": ["home"]},
        headers=h,
    )
    assert r.status_code == 201
    mid = r.json()["memory_id"]
    listed = (await c.get("/users/alice/memories", headers=h)).json()["memories"]
    assert [m["content"] for m in listed] == ["Alice lives in Lyon"]
    r = await c.patch(
        f"/users/alice/memories/{mid}", json={"content": "Alice lives in Paris"}, headers=h
    )
    assert r.json()["content"] == "Alice lives in Paris" and r.json()["topics"] == ["home"]
    # bob cannot edit alice's memory even by id (through his own user path)
    r = await c.patch(f"/users/bob/memories/{mid}", json={"content": "hacked"}, headers=_tok("bob"))
    assert r.status_code == 404
    assert (await c.delete(f"/users/alice/memories/{mid}", headers=h)).json() == {"deleted": True}
    assert (await c.delete(f"/users/alice/memories/{mid}", headers=h)).status_code == 404
