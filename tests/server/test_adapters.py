"""Mounting into FastAPI and Starlette under a prefix, and the bare ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from vivace.server import VivaceApp

from .apps import make_agents
from .conftest import parse_sse


async def _exercise(c: httpx.AsyncClient, prefix: str) -> None:
    r = await c.get(f"{prefix}/agents")
    assert r.status_code == 200 and len(r.json()["agents"]) == 6
    r = await c.post(f"{prefix}/agents/weather/runs", json={"input": "x"})
    assert r.json()["output"] == "done: sunny in Paris"
    r = await c.post(f"{prefix}/agents/echo/runs", json={"input": "hey", "stream": True})
    frames = parse_sse(r.text)
    run_id = r.headers["x-vivace-run-id"]
    r = await c.get(f"{prefix}/agents/echo/runs/{run_id}/events", headers={"Last-Event-ID": "0"})
    assert [f["data"] for f in parse_sse(r.text)] == [f["data"] for f in frames[1:]]
    r = await c.get(f"{prefix}/agents/nobody")
    assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"
    assert (await c.get(f"{prefix}/openapi.json")).json()["openapi"] == "3.1.0"


async def test_mount_in_fastapi() -> None:
    from fastapi import FastAPI

    vivace = VivaceApp(agents=make_agents(), auth=False)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with vivace.lifespan():
            yield

    api = FastAPI(lifespan=lifespan)

    @api.get("/own")
    def own() -> dict[str, str]:
        return {"mine": "yes"}

    api.mount("/vivace", vivace.asgi)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t") as c:
        assert (await c.get("/own")).json() == {"mine": "yes"}
        await _exercise(c, "/vivace")
        # the host app's own 404 is untouched, the mounted app's is JSON
        assert (await c.get("/vivace/nope")).json()["error"]["code"] == "route_not_found"


async def test_mount_in_starlette() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    vivace = VivaceApp(agents=make_agents(), auth=False)

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(routes=[Route("/", home), Mount("/ai", app=vivace)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.get("/")).text == "home"
        await _exercise(c, "/ai")


async def test_bare_asgi_app() -> None:
    vivace = VivaceApp(agents=make_agents(), auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(vivace), base_url="http://t") as c:
        await _exercise(c, "")


def test_bare_asgi_under_uvicorn(thread_server: Any) -> None:
    vivace = VivaceApp(agents=make_agents(), auth=False)
    with thread_server(vivace) as srv:
        r = httpx.post(srv.url + "/agents/echo/runs", json={"input": "real http"})
        assert r.json()["output"] == "echo: real http"
