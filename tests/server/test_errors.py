"""Bad input always gets a 4xx JSON error body, never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


def _assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) >= {"type", "code", "message"}
    assert "Traceback" not in r.text and 'File "' not in r.text
    if code is not None:
        assert err["code"] == code
    return err


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b'{"input": 5}', 422, "validation_error"),
        (b'{"input": "x", "stream": "maybe"}', 422, "validation_error"),
        (b'{"input": "x", "surprise": 1}', 422, "validation_error"),
        (b'{"input": []}', 422, "validation_error"),
        (b'{"input": [{"kind": "sound"}]}', 422, "validation_error"),
        (b'{"input": [{"kind": "image", "data": "%%%notbase64"}]}', 400, "invalid_base64"),
        (b'{"input": [{"kind": "image"}]}', 400, "invalid_part"),
        (b'{"input": [{"kind": "image", "url": "file:///etc/passwd"}]}', 400, "invalid_url"),
        (b'{"input": [{"kind": "image", "path": "/etc/passwd"}]}', 422, "validation_error"),
        (
            b'{"input": [{"kind": "image", "data": "aGk=", "media_type": "text/html"}]}',
            415,
            "unsupported_media_type",
        ),
        (
            b'{"input": [{"kind": "file", "data": "aGk=", "media_type": "application/x-msdownload"}]}',
            415,
            "unsupported_media_type",
        ),
        (b'{"input": "x", "max_steps": 0}', 422, "validation_error"),
    ],
)
async def test_bad_run_bodies(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    r = await client.post(
        "/agents/echo/runs", content=body, headers={"content-type": "application/json"}
    )
    _assert_error(r, status, code)


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/agents/echo/runs", content=b"hello", headers={"content-type": "text/plain"}
    )
    _assert_error(r, 415, "unsupported_media_type")


async def test_unknown_things_are_404(client: httpx.AsyncClient) -> None:
    _assert_error(await client.get("/agents/nobody"), 404, "agent_not_found")
    _assert_error(await client.post("/agents/nobody/runs", json={"input": "x"}), 404)
    _assert_error(await client.get("/agents/echo/runs/nope/events"), 404, "run_not_found")
    _assert_error(await client.post("/agents/echo/runs/nope/resume", json={"approvals": {}}), 404)
    _assert_error(await client.get("/no/such/route"), 404, "route_not_found")
    _assert_error(await client.delete("/agents"), 405, "method_not_allowed")
    # no storage configured: sessions are a clean 404 too
    _assert_error(await client.get("/sessions/abc"), 404, "storage_not_configured")


async def test_bad_last_event_id(client: httpx.AsyncClient) -> None:
    r = await client.post("/agents/echo/runs", json={"input": "x"})
    run_id = r.json()["run_id"]
    url = f"/agents/echo/runs/{run_id}/events"
    _assert_error(await client.get(url, headers={"Last-Event-ID": "abc"}), 400)
    _assert_error(await client.get(url, headers={"Last-Event-ID": "-5"}), 400)


async def test_oversized_body_is_413(make_app: Any) -> None:
    app = make_app(max_body_bytes=1000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        big = {"input": "x" * 5000}
        _assert_error(await c.post("/agents/echo/runs", json=big), 413, "body_too_large")

        async def chunks():  # no Content-Length: the streamed body is counted
            for _ in range(10):
                yield b"x" * 500

        r = await c.post(
            "/agents/echo/runs", content=chunks(), headers={"content-type": "application/json"}
        )
        _assert_error(r, 413, "body_too_large")
        ok = await c.post("/agents/echo/runs", json={"input": "small"})
        assert ok.status_code == 200


async def test_multipart_bad_file_type(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/agents/echo/runs",
        data={"input": "x"},
        files=[("files", ("a.exe", b"MZ", "application/x-msdownload"))],
    )
    _assert_error(r, 415, "unsupported_media_type")
    r = await client.post("/agents/echo/runs", data={"input": "x", "bogus": "1"})
    _assert_error(r, 400, "unknown_field")
    r = await client.post("/agents/echo/runs", data={"session_id": "s"})
    _assert_error(r, 422, "validation_error")


async def test_failed_run_is_a_result_not_a_500(make_app: Any) -> None:
    from vivace import Agent
    from vivace.server import VivaceApp
    from vivace.testing import ScriptedModel

    app = VivaceApp(agents=[Agent(model=ScriptedModel([]), name="broken")], auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        r = await c.post("/agents/broken/runs", json={"input": "x"})
        assert r.status_code == 200
        assert r.json()["status"] == "failed"
        assert r.json()["error"]["code"] == "unexpected_model_behavior"


def test_typed_errors_map_to_statuses_in_one_place() -> None:
    from vivace.errors import InvalidIdentifier, RunNotFound, StorageError, UserError
    from vivace.server.errors import from_vivace_error
    from vivace.storage import RunStateError, SessionOwnershipError

    class StateConflict(UserError):  # as the storage layer names it
        code = "state_conflict"

    bad_id = from_vivace_error(InvalidIdentifier("session_id has a NUL", field="session_id"))
    assert (bad_id.status, bad_id.code, bad_id.param) == (400, "invalid_identifier", "session_id")
    theirs = from_vivace_error(SessionOwnershipError("secret owner", session_id="s1"))
    assert (theirs.status, theirs.code, theirs.message) == (
        404,
        "session_not_found",
        "no session 's1'",
    )
    assert from_vivace_error(StateConflict("busy")).status == 409
    assert from_vivace_error(RunStateError("not paused")).status == 409
    assert from_vivace_error(RunNotFound("no run")).status == 404
    assert from_vivace_error(StorageError("down")).status == 503
