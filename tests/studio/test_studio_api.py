"""The Studio's HTTP side: route modules of the one app (in its OpenAPI document), the
server's auth and scopes on them, traces read back, the tool playground, /metrics, and who
may choose a run's model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest

from vivace import Agent, tool
from vivace.server import APIKeyAuth, JWTAuth, MultiAuth, VivaceApp
from vivace.studio import Studio
from vivace.testing import EchoModel, FunctionModel, call

SECRET = "studio-test-secret-long-enough-for-hs256"


def token(sub: str, scope: str = "runs sessions") -> dict[str, str]:
    claims = {"sub": sub, "scope": scope, "exp": int(time.time()) + 60}
    return {"authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


KEY = {"authorization": "Bearer admin-key-123"}


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def explode() -> str:
    """Always fails."""
    raise RuntimeError("kaboom")


def _calls_add(messages: list[Any], request: Any) -> object:
    if messages[-1].role == "tool":
        return f"sum is {messages[-1].parts[0].content}"
    return call("add", {"a": 2, "b": 3})


def agents() -> list[Agent]:
    return [
        Agent(
            model=FunctionModel(_calls_add, model_name="adder"), name="calc", tools=[add, explode]
        ),
        Agent(model="test/echo", name="echo"),
    ]


@asynccontextmanager
async def served(**kw: Any) -> AsyncIterator[tuple[VivaceApp, httpx.AsyncClient]]:
    from vivace.storage.inmemory import InMemoryStorage

    kw.setdefault("storage", InMemoryStorage())  # a storage of this test's own
    kw.setdefault("extensions", [Studio()])
    app = VivaceApp(agents(), **kw)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        yield app, client


@asynccontextmanager
async def serving(app: VivaceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        yield client


async def _flush(app: VivaceApp) -> None:
    import asyncio

    studio = app.extension("studio")
    assert studio is not None and studio.tracing is not None
    await asyncio.to_thread(studio.tracing.tracer.force_flush)


async def test_the_studio_is_part_of_the_one_app_and_its_openapi_document() -> None:
    async with served(auth=False) as (_, c):
        spec = (await c.get("/openapi.json")).json()
        paths = spec["paths"]
        for path in (
            "/studio/api/info",
            "/studio/api/traces",
            "/studio/api/traces/{trace_id}",
            "/studio/api/metrics",
            "/studio/api/agents/{agent_id}/tools/{tool}",
            "/metrics",
            "/agents/{agent_id}/runs",
        ):
            assert path in paths, path
        assert not [p for p in paths if p.startswith("/studio/assets") or p in ("/studio",)]
        assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
        assert "model" in spec["components"]["schemas"]["RunRequest"]["properties"]
        page = await c.get("/studio")
        assert page.status_code == 200 and "<title>" in page.text
        js = await c.get("/studio/assets/app.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert (await c.get("/studio/assets/../app.py")).status_code == 404
    # without the Studio, none of it is served or documented
    app = VivaceApp(agents(), auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        paths = (await c.get("/openapi.json")).json()["paths"]
        assert not [p for p in paths if p.startswith("/studio") or p == "/metrics"]
        assert (await c.get("/studio")).status_code == 404
        assert (await c.get("/metrics")).status_code == 404


async def test_traces_of_a_run_are_read_back_with_its_spans() -> None:
    async with served(auth=False) as (app, c):
        r = await c.post("/agents/calc/runs", json={"input": "2+3?", "user_id": "u1"})
        run = r.json()
        assert run["output"] == "sum is 5"
        await _flush(app)
        rows = (await c.get("/studio/api/traces", params={"agent": "calc"})).json()["traces"]
        [row] = rows
        assert row["trace_id"] == run["trace_id"] and row["run_id"] == run["run_id"]
        assert row["spans"] == 6 and row["status"] == "completed" and row["user_id"] == "u1"
        spans = (await c.get(f"/studio/api/traces/{run['trace_id']}")).json()["spans"]
        assert [s["name"] for s in spans] == [
            "invoke_agent calc",
            "storage begin_run",
            "chat adder",
            "execute_tool add",
            "chat adder",
            "storage finish_run",
        ]
        assert (await c.get("/studio/api/traces", params={"agent": "echo"})).json()["traces"] == []
        assert (await c.get("/studio/api/traces/" + "0" * 32)).status_code == 404
        assert (await c.get("/studio/api/traces", params={"limit": 0})).status_code == 400
        assert (await c.get("/studio/api/traces", params={"since": "x"})).status_code == 400
        metrics = (await c.get("/studio/api/metrics", params={"agent": "calc"})).json()
        rows = metrics["rows"]
        assert {m["agent"] for m in rows} == {"calc"}
        assert sum(m["runs"] for m in rows) == 1 and sum(m["tool_calls"] for m in rows) == 1
        prom = (await c.get("/metrics")).text
        assert 'vivace_runs_total{agent="calc",status="completed"} 1' in prom


async def test_the_tool_playground() -> None:
    async with served(auth=False) as (_, c):
        r = await c.post("/studio/api/agents/calc/tools/add", json={"arguments": {"a": 1, "b": 2}})
        assert r.json()["ok"] is True and r.json()["result"] == 3
        r = await c.post("/studio/api/agents/calc/tools/add", json={"arguments": {"a": "x"}})
        assert r.status_code == 200 and r.json()["ok"] is False
        assert r.json()["code"] == "tool_arguments_error"
        r = await c.post("/studio/api/agents/calc/tools/explode", json={})
        assert r.json() == {"ok": False, "error": "RuntimeError: kaboom", "code": "tool_error"}
        r = await c.post("/studio/api/agents/calc/tools/nope", json={})
        assert r.status_code == 404 and r.json()["error"]["code"] == "tool_not_found"
        r = await c.post("/studio/api/agents/calc/tools/add", json={"arguments": [1]})
        assert r.status_code == 422


async def test_the_studio_api_uses_the_servers_auth_and_scopes() -> None:
    auth = MultiAuth(APIKeyAuth("admin-key-123"), JWTAuth(SECRET))
    async with served(auth=auth) as (app, c):
        assert (await c.get("/studio")).status_code == 200  # the page is public: it signs in
        for path in ("/studio/api/info", "/studio/api/traces", "/metrics"):
            r = await c.get(path)
            assert r.status_code == 401 and r.json()["error"]["trace_id"]
        info = (await c.get("/studio/api/info", headers=token("ann"))).json()
        assert (info["user_id"], info["admin"], info["auth"]) == ("ann", False, "jwt")
        assert info["model_override"] is False and info["models"] == ["test/adder", "test/echo"]
        assert (await c.get("/studio/api/info", headers=KEY)).json()["model_override"] is True
        # each user sees their own traces; an admin sees all
        for who in ("ann", "bob"):
            r = await c.post("/agents/echo/runs", json={"input": f"hi {who}"}, headers=token(who))
            assert r.json()["status"] == "completed"
        await _flush(app)
        ann = (await c.get("/studio/api/traces", headers=token("ann"))).json()["traces"]
        assert {t["user_id"] for t in ann} == {"ann"}
        everyone = (await c.get("/studio/api/traces", headers=KEY)).json()["traces"]
        assert {t["user_id"] for t in everyone} == {"ann", "bob"}
        bobs = next(t["trace_id"] for t in everyone if t["user_id"] == "bob")
        assert (await c.get(f"/studio/api/traces/{bobs}", headers=token("ann"))).status_code == 404
        assert (await c.get(f"/studio/api/traces/{bobs}", headers=KEY)).status_code == 200
        # metrics are an admin's
        for path in ("/studio/api/metrics", "/metrics"):
            assert (await c.get(path, headers=token("ann"))).status_code == 403
            assert (await c.get(path, headers=token("root", "admin"))).status_code == 200


@pytest.mark.parametrize(
    ("setting", "user_may", "admin_may"),
    [(None, False, True), (True, True, True), (False, False, False)],
)
async def test_who_may_choose_a_runs_model(
    setting: bool | None, user_may: bool, admin_may: bool
) -> None:
    auth = MultiAuth(APIKeyAuth("admin-key-123"), JWTAuth(SECRET))
    async with served(auth=auth, model_override=setting) as (_, c):
        body = {"input": "hello", "model": "test/echo"}
        for headers, may in ((token("ann"), user_may), (KEY, admin_may)):
            r = await c.post("/agents/calc/runs", json=body, headers=headers)
            if may:
                assert r.json()["output"] == "echo: hello"
            else:
                assert r.status_code == 403
                assert r.json()["error"]["code"] == "model_override_forbidden"
                assert r.json()["error"]["param"] == "model"


async def test_a_model_override_on_an_open_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("VIVACE_API_KEY", "VIVACE_JWT_SECRET", "VIVACE_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(k, raising=False)
    async with served(auth=None) as (_, c):  # vivace dev: open to localhost only
        r = await c.post("/agents/calc/runs", json={"input": "hi", "model": "test/echo"})
        assert r.json()["output"] == "echo: hi"
        r = await c.post(
            "/agents/calc/runs", json={"input": "hi", "model": "test/echo", "stream": True}
        )
        assert '"model":"test/echo"' in r.text  # the model_request_started event
        r = await c.post("/agents/calc/runs", data={"input": "hi", "model": "test/echo"})
        assert r.json()["output"] == "echo: hi"
        # a model that does not resolve is refused before a run starts
        for model, code in (("nosuch/model", "model_not_found"), ("test/nope", "model_not_found")):
            r = await c.post("/agents/calc/runs", json={"input": "hi", "model": model})
            assert r.status_code == 400 and r.json()["error"]["code"] == code
        r = await c.post("/agents/calc/runs", json={"input": "hi", "model": ""})
        assert r.status_code == 422
        sessions = (await c.get("/sessions")).json()["sessions"]
        assert len(sessions) == 3  # the refused requests stored nothing


async def test_a_resumed_run_continues_on_the_chosen_model() -> None:
    from vivace.storage.inmemory import InMemoryStorage

    @tool(requires_approval=True)
    def wipe(path: str) -> str:
        """Wipe a path."""
        return f"wiped {path}"

    def first(messages: list[Any], request: Any) -> object:
        return call("wipe", {"path": "/tmp/a"})

    app = VivaceApp(
        [Agent(model=FunctionModel(first, model_name="asks"), name="wiper", tools=[wipe])],
        storage=InMemoryStorage(),
        auth=False,
        extensions=[Studio()],
    )
    async with serving(app) as c:
        paused = (await c.post("/agents/wiper/runs", json={"input": "wipe it"})).json()
        assert paused["status"] == "paused"
        call_id = paused["paused"]["pending"][0]["id"]
        r = await c.post(
            f"/agents/wiper/runs/{paused['run_id']}/resume",
            json={"approvals": {call_id: True}, "model": "test/echo"},
        )
        done = r.json()
        assert done["status"] == "completed"
        assert done["output"].startswith("echo:")  # echo answered after the approval


async def test_without_storage_the_trace_routes_say_so() -> None:
    app = VivaceApp([Agent(model=EchoModel(), name="e")], auth=False, extensions=[Studio()])
    async with serving(app) as c:
        assert (await c.get("/studio/api/info")).json()["traces"] is False
        r = await c.get("/studio/api/traces")
        assert r.status_code == 404 and r.json()["error"]["code"] == "traces_not_stored"
        assert (await c.get("/metrics")).status_code == 200


async def test_a_workflow_runs_step_inputs_are_replayed_from_its_journal() -> None:
    from vivace.storage.inmemory import InMemoryStorage
    from vivace.workflows import Workflow, step

    @step
    def double(x: int) -> int:
        return x * 2

    @step
    def add_one(x: int) -> int:
        return x + 1

    @step
    def label(n: int) -> str:
        return f"n={n}"

    wf = (
        Workflow("math")
        .then(double)
        .dountil(add_one, lambda n: n >= 13)
        .parallel([label, double.with_id("again")])
    )
    auth = MultiAuth(APIKeyAuth("admin-key-123"), JWTAuth(SECRET))
    app = VivaceApp([], storage=InMemoryStorage(), auth=auth, workflows=[wf], extensions=[Studio()])
    async with serving(app) as c:
        info = (await c.get("/studio/api/info", headers=KEY)).json()
        assert info["workflows"] is True
        run = (await c.post("/workflows/math/runs", json={"input": 5}, headers=token("ann"))).json()
        assert run["status"] == "completed"
        url = f"/studio/api/workflows/math/runs/{run['run_id']}/inputs"
        inputs = (await c.get(url, headers=token("ann"))).json()["inputs"]
        assert inputs == {
            "double": 5,
            "add_one[0]": 10,
            "add_one[1]": 11,
            "add_one[2]": 12,
            "label": 13,
            "again": 13,
        }
        assert (await c.get(url, headers=token("bob"))).status_code == 404  # ann's run
        assert (await c.get(url, headers=KEY)).status_code == 200  # an admin's
        missing = "/studio/api/workflows/math/runs/nope/inputs"
        assert (await c.get(missing, headers=KEY)).status_code == 404
        assert (
            await c.get("/studio/api/workflows/none/runs/x/inputs", headers=KEY)
        ).status_code == 404
