"""MCP in the server: ``/mcp`` of a live ``vivace serve`` (and of in-process uvicorn apps)
checked with the official ``mcp`` Python client (both protocol eras: the 2026 stateless
requests and the older initialize handshake) and the MCP Inspector's CLI, with and without
the server's auth."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp")

import httpx2
import mcp
from mcp.client.streamable_http import streamable_http_client

from vivace.server import APIKeyAuth, JWTAuth, VivaceApp
from vivace.storage import InMemoryStorage

from .conftest import ServeProcess

KEY = "mcp-test-key"
SECRET = "s" * 32
ISSUER = "https://auth.example.com"
TOOLS = {"forecaster", "bank", "shop", "desk", "get_weather", "doubler", "asker"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``vivace serve tests.server.protocol_app:app`` with an API key."""
    db = tmp_path_factory.mktemp("mcp") / "v.db"
    with ServeProcess(
        "tests.server.protocol_app:app",
        "--storage",
        f"sqlite:///{db}",
        env={"VIVACE_API_KEY": KEY},
    ) as srv:
        yield srv


@asynccontextmanager
async def client(url: str, headers: dict[str, str], mode: str = "auto") -> AsyncIterator[Any]:
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with mcp.Client(transport, mode=mode) as c:  # type: ignore[arg-type]
            yield c


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_official_client_lists_calls_and_gets_progress(live: ServeProcess, mode: str) -> None:
    async with client(f"{live.url}/mcp", {"Authorization": f"Bearer {KEY}"}, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == TOOLS
        assert tools["forecaster"].input_schema["required"] == ["task"]
        assert tools["get_weather"].input_schema["properties"]["city"]["type"] == "string"
        progress: list[str | None] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(message)

        result = await c.call_tool("forecaster", {"task": "Lyon"}, progress_callback=on_progress)
        assert not result.is_error
        assert result.content[0].text == "It is sunny in Lyon, 21 C."  # type: ignore[union-attr]
        assert progress == [
            "step 1: asking the model",
            "calling get_weather",
            "step 2: asking the model",
        ]
        plain = await c.call_tool("get_weather", {"city": "Oslo"})
        assert plain.structured_content == {"city": "Oslo", "sky": "sunny", "celsius": 21}
        team = await c.call_tool("desk", {"task": "weather?"})  # a team is an agent here too
        assert team.content[0].text == "sunny today"  # type: ignore[union-attr]
        paused = await c.call_tool("bank", {"task": "send 9"})  # MCP cannot ask for approval
        assert paused.is_error and "paused for an approval of transfer" in paused.content[0].text  # type: ignore[union-attr]
        bad = await c.call_tool("get_weather", {})
        assert bad.is_error and "city" in bad.content[0].text  # type: ignore[union-attr]
        # workflows: their input type's schema; a suspended run is an error naming it
        assert tools["doubler"].input_schema["properties"]["input"]["type"] == "integer"
        assert tools["doubler"].description == "Doubles a number."
        doubled = await c.call_tool("doubler", {"input": 21})
        assert doubled.content[0].text == "42"  # type: ignore[union-attr]
        wrong = await c.call_tool("doubler", {"input": "many"})
        assert wrong.is_error
        waiting = await c.call_tool("asker", {"input": 1})
        assert waiting.is_error and "is suspended at ask" in waiting.content[0].text  # type: ignore[union-attr]


async def test_without_credentials_the_servers_401(live: ServeProcess) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = await http.post("/mcp", json=body)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="vivace"'
        assert r.json()["error"]["code"] == "unauthorized"  # the server's error shape
        r = await http.post("/mcp", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        # the official client, without the key, fails (and gets no tools)
        with pytest.raises(BaseException) as info:
            async with client(f"{live.url}/mcp", {}) as c:
                await c.list_tools()
        assert any(type(e).__name__ == "MCPError" for e in _leaves(info.value))
        assert (
            await http.get("/mcp", headers={"Authorization": f"Bearer {KEY}"})
        ).status_code == 405


def _token(user: str, scope: str = "runs") -> str:
    import jwt

    claims = {"sub": user, "scope": scope, "exp": time.time() + 600, "iss": ISSUER}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_jwt_users_own_their_runs_and_the_401_names_resource_metadata(
    thread_server: Any,
) -> None:
    from . import protocol_app

    storage = InMemoryStorage()
    app = VivaceApp(
        agents=[protocol_app.forecaster],
        storage=storage,
        auth=JWTAuth(SECRET, issuer=ISSUER),
        protocols=["mcp"],
    )
    with thread_server(app) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            r = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            metadata_url = f"{srv.url}/.well-known/oauth-protected-resource/mcp"
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == (
                f'Bearer realm="vivace", resource_metadata="{metadata_url}"'
            )
            doc = (await http.get(metadata_url)).json()  # RFC 9728, public
            assert doc["resource"] == f"{srv.url}/mcp"
            assert doc["authorization_servers"] == [ISSUER]
            other = await http.get("/agents")  # other routes: the plain challenge
            assert other.headers["www-authenticate"] == 'Bearer realm="vivace"'
            no_scope = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Authorization": f"Bearer {_token('carol', 'sessions')}"},
            )
            assert no_scope.status_code == 403
            assert 'error="insufficient_scope", ' in no_scope.headers["www-authenticate"]
        alice = {"Authorization": f"Bearer {_token('alice')}"}
        async with client(f"{srv.url}/mcp", alice) as c:
            ok = await c.call_tool("forecaster", {"task": "Rome", "session_id": "alice-chat"})
            assert not ok.is_error
        runs = await storage.sessions.list_runs("alice-chat")
        assert [r.user_id for r in runs] == ["alice"]  # the token's user owns the run
        bob = {"Authorization": f"Bearer {_token('bob')}"}
        async with client(f"{srv.url}/mcp", bob) as c:
            denied = await c.call_tool("forecaster", {"task": "Rome", "session_id": "alice-chat"})
        assert denied.is_error
        assert denied.content[0].text == "no session 'alice-chat'"  # type: ignore[union-attr]
        assert len(await storage.sessions.list_runs("alice-chat")) == 1


@pytest.fixture(scope="module")
def open_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``vivace serve`` with no auth configured: open to loopback clients only."""
    db = tmp_path_factory.mktemp("mcp-open") / "v.db"
    env = {"VIVACE_API_KEY": "", "VIVACE_JWT_SECRET": "", "VIVACE_JWT_PUBLIC_KEY": ""}
    with ServeProcess(
        "tests.server.protocol_app:app", "--storage", f"sqlite:///{db}", env=env
    ) as srv:
        yield srv


def _inspector(js_modules: Path, *args: str) -> Any:
    cli = js_modules / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
    out = subprocess.run(
        ["node", str(cli), "--cli", *args], capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_inspector_cli_against_vivace_serve(js_modules: Path, open_live: ServeProcess) -> None:
    url = f"{open_live.url}/mcp"
    listed = _inspector(js_modules, url, "--transport", "http", "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == TOOLS
    called = _inspector(
        js_modules,
        url,
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "forecaster",
        "--tool-arg",
        "task=Nice",
    )
    assert called["content"][0]["text"] == "It is sunny in Nice, 21 C."


async def test_the_session_manager_runs_inside_the_lifespan() -> None:
    from . import protocol_app

    app = VivaceApp(agents=[protocol_app.forecaster], auth=False, protocols=["mcp"])
    headers = {"accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    def manager_tasks() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "vivace-mcp-session-manager"]

    async with app.lifespan():
        assert manager_tasks() == []  # nothing of the SDK until an MCP client comes
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            r = await c.post("/mcp", json=body, headers=headers)
            assert r.status_code == 200 and "forecaster" in r.text
            r = await c.post("/agents/forecaster/runs", json={"input": "Oslo"})
            assert r.json()["output"] == "It is sunny in Oslo, 21 C."  # other routes unchanged
        (task,) = manager_tasks()
    await asyncio.sleep(0)
    assert task.done() and manager_tasks() == []  # stopped with the app


async def test_malformed_messages_are_jsonrpc_errors_never_5xx() -> None:
    from . import protocol_app

    app = VivaceApp(agents=[protocol_app.forecaster], auth=False, protocols=["mcp"])
    headers = {"accept": "application/json, text/event-stream"}
    bodies: list[Any] = [
        {"jsonrpc": "2.0", "id": 1, "method": "nope"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "forecaster"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"arguments": "x"}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": None},
        {"jsonrpc": "1.0", "id": 5, "method": "tools/list"},
        {"id": {"a": 1}, "method": "tools/list"},
        [{"jsonrpc": "2.0", "id": 6, "method": "tools/list"}],
        "tools/list",
        None,
    ]
    async with app.lifespan():
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            for body in bodies:
                r = await c.post(
                    "/mcp",
                    content=json.dumps(body),
                    headers={**headers, "content-type": "application/json"},
                )
                assert r.status_code < 500, (body, r.status_code, r.text)
                if r.headers.get("content-type", "").startswith("application/json"):
                    assert "error" in r.json() or "result" in r.json(), (body, r.text)
            r = await c.post("/mcp", content=b"{", headers=headers)
            assert r.status_code == 415  # no content type: the server's own answer
            r = await c.post(
                "/mcp", content=b"{", headers={**headers, "content-type": "application/json"}
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == -32700  # parse error


def test_tools_that_need_an_approval_cannot_be_served() -> None:
    from vivace.errors import UserError

    from . import protocol_app

    with pytest.raises(UserError, match="requires an approval"):
        VivaceApp(agents=[], tools=[protocol_app.transfer], protocols=["mcp"])
    with pytest.raises(UserError, match="two MCP tools"):
        VivaceApp(agents=[protocol_app.forecaster], tools=[_named("forecaster")])
    # without MCP the same app is fine
    VivaceApp(agents=[protocol_app.forecaster], tools=[protocol_app.transfer], protocols=False)


def _named(name: str) -> Any:
    from vivace import tool

    @tool(name=name)
    def f() -> str:
        """A tool."""
        return "x"

    return f


def test_an_unknown_or_missing_protocol_is_a_typed_error() -> None:
    from vivace.errors import UserError

    with pytest.raises(UserError, match="unknown protocol"):
        VivaceApp(protocols=["grpc"])
    app = VivaceApp(protocols=False)
    assert not any(op.path == "/mcp" for op in app.asgi.state.ops)
    assert APIKeyAuth  # the auth classes stay importable from vivace.server
