"""Routes are module-level handlers over ``request.app.state``; agents keep the storage they
brought (issue 9 part 4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from vivace import Agent
from vivace.errors import UserError
from vivace.server import VivaceApp
from vivace.storage import InMemoryStorage, shared_storage
from vivace.testing import EchoModel


def test_an_agent_keeps_the_storage_it_brought(tmp_path: Path) -> None:
    own = f"sqlite:///{tmp_path / 'own.db'}"
    mine = Agent(EchoModel(), name="mine", storage=own)
    plain = Agent(EchoModel(), name="plain")
    app = VivaceApp([mine, plain], auth=False)
    # no server storage given: the one the agents brought serves the sessions
    assert app.storage is shared_storage(own)
    assert app.agents["mine"] is mine and mine.storage == own
    assert plain.storage is None  # the agent passed in is not changed...
    assert app.agents["plain"].storage is app.storage  # ...the app serves a copy


async def test_sessions_of_an_agent_with_its_own_storage_are_served(tmp_path: Path) -> None:
    st = InMemoryStorage()
    app = VivaceApp([Agent(EchoModel(), name="mine", storage=st)], auth=False)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c,
    ):
        r = await c.post("/agents/mine/runs", json={"input": "hi", "session_id": "s1"})
        assert r.json()["status"] == "completed"
        assert (await st.sessions.get_run(r.json()["run_id"])) is not None
        session = await c.get("/sessions/s1")
        assert session.status_code == 200 and len(session.json()["runs"]) == 1


def test_a_conflicting_storage_is_a_clear_error(tmp_path: Path) -> None:
    mine = Agent(EchoModel(), name="mine", storage=InMemoryStorage())
    with pytest.raises(UserError, match="agent 'mine' has its own storage"):
        VivaceApp([mine], storage=InMemoryStorage())
    other = Agent(EchoModel(), name="other", storage=InMemoryStorage())
    with pytest.raises(UserError, match="different storages"):
        VivaceApp([mine, other])
    # the same URL is the same storage: no conflict
    url = f"sqlite:///{tmp_path / 'same.db'}"
    app = VivaceApp([Agent(EchoModel(), name="a", storage=url)], storage=url)
    assert app.storage is shared_storage(url)


async def test_a_handler_is_a_plain_function_of_the_request() -> None:
    from starlette.requests import Request

    from vivace.server.routes import agents

    app = VivaceApp([Agent(EchoModel(), name="echo", description="Repeats.")], auth=False)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/agents/echo",
        "headers": [],
        "query_string": b"",
        "path_params": {"agent_id": "echo"},
        "app": app.asgi,
    }
    response = await agents.get_agent(Request(scope))
    assert response.status_code == 200
    assert b'"description":"Repeats."' in response.body
    assert app.asgi.state.agents is app.agents
