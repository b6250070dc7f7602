"""What a full schemathesis run against a live server reported (issue 8 item 5), each pinned:
the ``Allow`` header of a 405, the documented SSE events, query limits, bodies the schema
allows, strict multipart booleans. Real HTTP (uvicorn)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vivace.server import VivaceApp
from vivace.storage import open_storage

from .apps import make_agents


@pytest.fixture(scope="module")
def app() -> VivaceApp:
    return VivaceApp(agents=make_agents(), storage=open_storage("memory://"), auth=False)


@pytest.fixture
def c(app: VivaceApp, thread_server: Any) -> Iterator[httpx.Client]:
    with thread_server(app) as srv, httpx.Client(base_url=srv.url, timeout=20) as client:
        yield client


def test_405_allow_lists_every_method_of_the_path(c: httpx.Client, app: VivaceApp) -> None:
    paths = app.openapi()["paths"]
    for path, ops in paths.items():
        url = re.sub(r"{[^}]+}", "x", path)
        r = c.request("TRACE", url)
        assert r.status_code == 405, (path, r.status_code)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        documented = {m.upper() for m in ops}
        assert allowed - {"HEAD"} == documented, (path, allowed, documented)
    r = c.request("PUT", "/sessions/x")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PATCH", "DELETE"}


def test_sse_responses_document_one_event_each(app: VivaceApp) -> None:
    paths = app.openapi()["paths"]
    streams = {
        (path, method): op["responses"]["200"]["content"]["text/event-stream"]["schema"]
        for path, ops in paths.items()
        for method, op in ops.items()
        if "text/event-stream" in op["responses"].get("200", {}).get("content", {})
    }
    assert set(streams) == {
        ("/agents/{agent_id}/runs", "post"),
        ("/agents/{agent_id}/runs/{run_id}/events", "get"),
        ("/agents/{agent_id}/runs/{run_id}/resume", "post"),
        ("/v1/chat/completions", "post"),
        ("/v1/responses", "post"),
        ("/workflows/{workflow_id}/runs", "post"),
        ("/workflows/{workflow_id}/runs/{run_id}/events", "get"),
        ("/workflows/{workflow_id}/runs/{run_id}/resume", "post"),
        # the open protocols' streams (MCP replies, A2A streaming methods, AG-UI runs)
        ("/mcp", "post"),
        ("/a2a/{agent_id}/", "post"),
        ("/agents/{agent_id}/agui", "post"),
    }
    for schema in streams.values():
        assert schema["type"] == "object" and "data" in schema["properties"]


def test_documented_limits_are_the_enforced_ones(c: httpx.Client, app: VivaceApp) -> None:
    params = {
        p["name"]: p["schema"] for p in app.openapi()["paths"]["/sessions"]["get"]["parameters"]
    }
    top = params["offset"]["maximum"]
    assert c.get("/sessions", params={"offset": top}).status_code == 200
    assert c.get("/sessions", params={"offset": top + 1}).status_code == 400
    assert c.get("/sessions", params={"user_id": ""}).status_code == 400  # minLength 1


def test_multipart_stream_must_be_a_boolean(c: httpx.Client) -> None:
    for bad in ("{}", "maybe", "", "1", "0"):
        r = c.post("/agents/echo/runs", data={"input": "x", "stream": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["param"] == "stream"
    for good, streamed in (("true", True), ("False", False), ("TRUE", True)):
        r = c.post("/agents/echo/runs", data={"input": "x", "stream": good})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream") is streamed


def test_openai_bodies_the_schema_allows_are_accepted(c: httpx.Client, app: VivaceApp) -> None:
    schemas = app.openapi()["components"]["schemas"]
    contains = schemas["ChatCompletionRequest"]["properties"]["messages"]["contains"]
    assert contains["properties"]["role"] == {"const": "user"}  # a user message is required
    # a conversation that does not end with a user message: its last user message is the input
    r = c.post(
        "/v1/chat/completions",
        json={
            "model": "echo",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "tool", "content": "ignored"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
    # what the schema refuses is a 4xx
    no_user = {"model": "echo", "messages": [{"role": "tool"}]}
    assert c.post("/v1/chat/completions", json=no_user).status_code == 400
    other_item = {"model": "echo", "input": [{"type": "function_call"}]}
    assert c.post("/v1/responses", json=other_item).status_code == 422
    bad_part = {"model": "echo", "messages": [{"role": "user", "content": [{"type": "x"}]}]}
    assert c.post("/v1/chat/completions", json=bad_part).status_code == 422


def test_a_url_or_file_name_type_is_a_hint_not_a_refusal(c: httpx.Client) -> None:
    r = c.post(
        "/agents/echo/runs",
        json={"input": [{"kind": "image", "url": "https://example.com/picture.txt"}]},
    )
    assert r.status_code == 200, r.text
    r = c.post(
        "/agents/echo/runs",
        data={"input": "x"},
        files=[("files", ("archive.zip", b"PK", "application/octet-stream"))],
    )
    assert r.status_code == 200, r.text
    assert r.json()["messages"][0]["parts"][1]["media_type"] == "application/octet-stream"
    # a declared type outside the accepted ones is still refused
    r = c.post(
        "/agents/echo/runs",
        data={"input": "x"},
        files=[("files", ("a.zip", b"PK", "application/zip"))],
    )
    assert r.status_code == 415
