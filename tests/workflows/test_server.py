"""Workflow routes over real HTTP (uvicorn in a thread): list/describe, start (JSON and SSE),
reconnect with Last-Event-ID, get/list runs, resume, cancel, time travel, per-user ownership,
OpenAPI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.server.conftest import ThreadServer, parse_sse
from tests.workflows.flows import build
from vivace.server import JWTAuth, VivaceApp
from vivace.storage import SQLiteStorage

SECRET = "workflow-routes-secret-long-enough-for-hs256"


def tok(sub: str, scope: str = "runs sessions") -> dict[str, str]:
    t = jwt.encode(
        {"sub": sub, "scope": scope, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256"
    )
    return {"Authorization": f"Bearer {t}"}


def alice() -> dict[str, str]:
    return tok("alice")


def bob() -> dict[str, str]:
    return tok("bob")


@pytest.fixture
def srv(tmp_path: Path, step_log: str) -> Iterator[ThreadServer]:
    storage = SQLiteStorage(tmp_path / "w.db")
    wfs = build(None)  # no storage of their own: they run on the server's
    app = VivaceApp(storage=storage, auth=JWTAuth(SECRET), workflows=list(wfs.values()))
    with ThreadServer(app) as s:
        yield s


def test_list_and_describe(srv: ThreadServer) -> None:
    r = httpx.get(f"{srv.url}/workflows", headers=alice())
    assert r.status_code == 200
    ids = {w["id"] for w in r.json()["workflows"]}
    assert {"nested", "parallel", "branch", "loop", "foreach"} <= ids
    d = httpx.get(f"{srv.url}/workflows/parallel", headers=alice()).json()
    assert d["input_schema"] == {"type": "integer"}
    assert d["steps"]["left"]["resume"] == "Decision"
    assert {n["id"] for n in d["graph"]["nodes"]} >= {"left", "right", "plain", "finish"}
    assert d["mermaid"].startswith("flowchart TD")
    r = httpx.get(f"{srv.url}/workflows/nope", headers=alice())
    assert r.status_code == 404 and r.json()["error"]["code"] == "workflow_not_found"
    assert httpx.get(f"{srv.url}/workflows").status_code == 401
    spec = httpx.get(f"{srv.url}/openapi.json").json()
    assert "/workflows/{workflow_id}/runs/{run_id}/resume" in spec["paths"]


def test_json_run_suspend_resume_and_ownership(srv: ThreadServer) -> None:
    url = srv.url
    r = httpx.post(
        f"{url}/workflows/parallel/runs", json={"input": 3, "run_id": "p-1"}, headers=alice()
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "suspended" and body["run_id"] == "p-1"
    assert sorted(s["path"] for s in body["suspended"]) == ["left", "right"]
    # bob cannot see, resume or cancel alice's run
    for method, path, payload in (
        ("GET", "/workflows/parallel/runs/p-1", None),
        ("POST", "/workflows/parallel/runs/p-1/resume", {"step": "left", "data": {"ok": True}}),
        ("POST", "/workflows/parallel/runs/p-1/cancel", None),
    ):
        r = httpx.request(method, url + path, json=payload, headers=bob())
        assert r.status_code == 404 and r.json()["error"]["code"] == "run_not_found", r.text
    assert httpx.get(f"{url}/workflows/parallel/runs", headers=bob()).json()["runs"] == []
    listed = httpx.get(f"{url}/workflows/parallel/runs?status=suspended", headers=alice()).json()
    assert [x["run_id"] for x in listed["runs"]] == ["p-1"]
    got = httpx.get(f"{url}/workflows/parallel/runs/p-1", headers=alice()).json()
    assert got["steps"]["plain"]["output"] == 1003 and got["user_id"] == "alice"
    # bad resume data: 422, nothing written
    r = httpx.post(
        f"{url}/workflows/parallel/runs/p-1/resume",
        json={"step": "left", "data": {"ok": "x"}},
        headers=alice(),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "resume_data_invalid"
    r = httpx.post(
        f"{url}/workflows/parallel/runs/p-1/resume",
        json={"step": "plain", "data": {}},
        headers=alice(),
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "step_not_suspended"
    r = httpx.post(
        f"{url}/workflows/parallel/runs/p-1/resume",
        json={"step": "left", "data": {"ok": True}},
        headers=alice(),
    )
    assert r.json()["status"] == "suspended"
    r = httpx.post(
        f"{url}/workflows/parallel/runs/p-1/resume",
        json={"step": "right", "data": {"ok": True}},
        headers=alice(),
    )
    assert r.json()["status"] == "completed"
    assert r.json()["output"] == {"final": {"left": 300, "right": 300, "plain": 1003}}
    r = httpx.post(
        f"{url}/workflows/parallel/runs/p-1/resume",
        json={"step": "right", "data": {"ok": True}},
        headers=alice(),
    )
    assert r.status_code == 409
    r = httpx.post(f"{url}/workflows/parallel/runs", json={"input": "three"}, headers=alice())
    assert r.status_code == 422 and r.json()["error"]["code"] == "workflow_input_invalid"
    r = httpx.post(
        f"{url}/workflows/parallel/runs", json={"input": 3, "run_id": "p-1"}, headers=alice()
    )
    assert r.status_code == 409


def test_sse_start_reconnect_and_resume_stream(srv: ThreadServer) -> None:
    url = srv.url
    with httpx.stream(
        "POST",
        f"{url}/workflows/nested/runs",
        json={"input": 1, "stream": True, "run_id": "s-1"},
        headers=alice(),
    ) as r:
        assert r.status_code == 200 and r.headers["x-vivace-run-id"] == "s-1"
        frames = parse_sse(r.read().decode())
    types = [f["event"] for f in frames]
    assert types[0] == "workflow_started" and types[-1] == "workflow_suspended"
    assert [int(f["id"]) for f in frames] == list(range(len(frames)))
    # reconnect after the 2nd event: the rest, in order
    r = httpx.get(
        f"{url}/workflows/nested/runs/s-1/events", headers={**alice(), "Last-Event-ID": "1"}
    )
    again = parse_sse(r.text)
    assert [f["data"]["seq"] for f in again] == list(range(2, len(frames)))
    assert httpx.get(f"{url}/workflows/nested/runs/s-1/events", headers=bob()).status_code == 404
    with httpx.stream(
        "POST",
        f"{url}/workflows/nested/runs/s-1/resume",
        json={"step": "inner.approve", "data": {"ok": True}, "stream": True},
        headers=alice(),
    ) as r:
        resumed = parse_sse(r.read().decode())
    assert resumed[0]["event"] == "workflow_resumed"
    assert int(resumed[0]["id"]) == len(frames)  # the sequence goes on
    assert resumed[-1]["event"] == "workflow_completed"
    assert resumed[-1]["data"]["output"] == {"final": 200}


@pytest.mark.parametrize("stream", [False, True])
def test_run_ids_in_any_script_come_back_percent_encoded(srv: ThreadServer, stream: bool) -> None:
    """A run id in Chinese with an emoji and a space: start, resume and get answer 200 with
    ``x-vivace-run-id`` as percent-encoded UTF-8 (it was a 500 after the run had started)."""
    from urllib.parse import quote, unquote

    url, run_id = srv.url, f"订单 42-💩-{stream}"
    start = {"input": 1, "run_id": run_id, "stream": stream}
    r = httpx.post(f"{url}/workflows/nested/runs", json=start, headers=alice())
    assert r.status_code == 200, r.text
    assert unquote(r.headers["x-vivace-run-id"]) == run_id
    assert r.headers["x-vivace-run-id"].isascii()
    path = f"{url}/workflows/nested/runs/{quote(run_id)}"
    resume = {"step": "inner.approve", "data": {"ok": True}, "stream": stream}
    r = httpx.post(f"{path}/resume", json=resume, headers=alice())
    assert r.status_code == 200, r.text
    assert unquote(r.headers["x-vivace-run-id"]) == run_id
    got = httpx.get(path, headers=alice()).json()
    assert got["run_id"] == run_id and got["status"] == "completed"


def test_cancel_and_time_travel(srv: ThreadServer, step_log: str) -> None:
    url = srv.url
    r = httpx.post(
        f"{url}/workflows/loop/runs", json={"input": 0, "run_id": "l-1"}, headers=alice()
    )
    assert r.json()["suspended"][0]["path"] == "tick[3]"
    r = httpx.post(f"{url}/workflows/loop/runs/l-1/cancel", headers=alice())
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (
        httpx.get(f"{url}/workflows/loop/runs/l-1", headers=alice()).json()["status"] == "cancelled"
    )
    assert httpx.post(f"{url}/workflows/loop/runs/l-1/cancel", headers=alice()).status_code == 409
    r = httpx.post(
        f"{url}/workflows/branch/runs", json={"input": 1, "run_id": "b-1"}, headers=alice()
    )
    assert r.json()["output"] == {"final": {"plain": 1002}}
    # an input the step cannot take is refused before any run exists
    r = httpx.post(
        f"{url}/workflows/branch/runs/b-1/time-travel",
        json={"step": "plain", "input": {"not": "a number"}, "run_id": "b-bad"},
        headers=alice(),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "workflow_input_invalid"
    assert "plain" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/workflows/branch/runs/b-bad", headers=alice()).status_code == 404
    r = httpx.post(
        f"{url}/workflows/branch/runs/b-1/time-travel",
        json={"step": "plain", "input": 5, "run_id": "b-2"},
        headers=alice(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["run_id"] == "b-2" and r.json()["origin_run_id"] == "b-1"
    assert r.json()["output"] == {"final": {"plain": 1005}}


async def test_events_from_another_worker_and_schedules_in_the_server(
    tmp_path: Path, step_log: str
) -> None:
    """Two apps on one storage with the storage-backed event log (two workers): a run streamed
    by one is re-read from the other with Last-Event-ID. The app fires cron schedules."""
    import asyncio

    from vivace.storage import open_storage
    from vivace.workflows import Workflow, step

    @step
    def tick(_: object) -> str:
        return "tock"

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    every = Workflow("every_second", schedule="* * * * * *").then(tick)
    make = lambda: VivaceApp(  # noqa: E731
        storage=open_storage(url),
        auth=False,
        event_log="storage",
        workflows=[*build(None).values(), every],
    )
    a, b = make(), make()
    async with (
        a.lifespan(),
        b.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(a.asgi), base_url="http://a") as ca,
        httpx.AsyncClient(transport=httpx.ASGITransport(b.asgi), base_url="http://b") as cb,
    ):
        r = await ca.post(
            "/workflows/nested/runs", json={"input": 1, "stream": True, "run_id": "x-1"}
        )
        frames = parse_sse(r.text)
        assert frames[-1]["event"] == "workflow_suspended"
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the log writes in batches: wait until the other worker sees them all
            again = parse_sse(
                (
                    await cb.get(
                        "/workflows/nested/runs/x-1/events", headers={"Last-Event-ID": "0"}
                    )
                ).text
            )
            if len(again) == len(frames) - 1:
                break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        assert [f["data"]["seq"] for f in again] == list(range(1, len(frames)))
        assert again[-1]["event"] == "workflow_suspended"
        # the schedule fires once per tick although two apps run it
        while True:
            runs = (await ca.get("/workflows/every_second/runs?status=completed")).json()["runs"]
            if len(runs) >= 2:
                break
            assert asyncio.get_running_loop().time() < deadline + 30
            await asyncio.sleep(0.2)
    ticks = [r["run_id"] for r in runs]
    assert len(set(ticks)) == len(ticks) and all(t.startswith("every_second@") for t in ticks)
