"""SSE reconnect on a worker that is not running the run (the storage-backed event log).

Fast tests use two apps in one process sharing one SQLite file, each with its own storage
object and its own in-process log - two workers in all but pid. The slow tests run
``vivace serve --workers 2`` on PostgreSQL and reconnect until the other worker answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from vivace.errors import StorageError
from vivace.server import JWTAuth, VivaceApp
from vivace.server.sse import InMemoryEventLog, RunInfo, StorageEventLog
from vivace.storage import InMemoryStorage, RunRecord, SQLiteStorage

from .apps import make_agents
from .conftest import parse_sse

SECRET = "reconnect-test-secret-long-enough-for-hs256"


def _app(db: Path, **kw: Any) -> VivaceApp:
    kw.setdefault("auth", False)
    kw.setdefault("event_log", "storage")
    return VivaceApp(agents=make_agents(), storage=SQLiteStorage(db), **kw)


def _read_until(resp: httpx.Response, event: str) -> list[dict[str, Any]]:
    buf = ""
    for chunk in resp.iter_text():
        buf += chunk
        frames = parse_sse(buf.rsplit("\n\n", 1)[0] + "\n\n") if "\n\n" in buf else []
        if any(f["event"] == event for f in frames):
            return frames
    raise AssertionError(f"stream ended before {event}: {buf!r}")


def _seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["data"]["seq"] for f in frames]


@pytest.fixture
def two_workers(
    tmp_path: Path, thread_server: Any, gate: threading.Event
) -> Iterator[tuple[Any, Any]]:
    db = tmp_path / "shared.db"
    with thread_server(_app(db)) as a, thread_server(_app(db)) as b:
        yield a, b


def test_mid_run_reconnect_on_another_worker(
    two_workers: tuple[Any, Any], gate: threading.Event
) -> None:
    a, b = two_workers
    with httpx.Client(timeout=20) as ca, httpx.Client(timeout=20) as cb:
        with ca.stream(
            "POST", a.url + "/agents/gated/runs", json={"input": "go", "stream": True}
        ) as r:
            run_id = r.headers["x-vivace-run-id"]
            first = _read_until(r, "tool_call_started")  # then drop: the tool is blocked
        last = first[-1]["id"]
        url = f"{b.url}/agents/gated/runs/{run_id}/events"
        with cb.stream("GET", url, headers={"Last-Event-ID": last}) as r:
            assert r.status_code == 200  # b does not run it: served from storage, live
            gate.set()  # only now can the run go on: b must pick up new events as they come
            rest = parse_sse(r.read().decode())
    seqs = _seqs(first + rest)
    assert seqs == list(range(len(seqs)))
    assert rest[-1]["event"] == "run_completed"
    assert rest[-1]["data"]["output"] == "done: gate open"


def test_finished_run_reconnect_on_another_worker(two_workers: tuple[Any, Any]) -> None:
    a, b = two_workers
    r = httpx.post(a.url + "/agents/weather/runs", json={"input": "weather?"})
    assert r.json()["status"] == "completed"
    run_id = r.json()["run_id"]
    on_a = parse_sse(httpx.get(f"{a.url}/agents/weather/runs/{run_id}/events").text)
    on_b = parse_sse(httpx.get(f"{b.url}/agents/weather/runs/{run_id}/events").text)
    assert [f["data"] for f in on_b] == [f["data"] for f in on_a]
    assert on_b[-1]["event"] == "run_completed"
    tail = parse_sse(
        httpx.get(
            f"{b.url}/agents/weather/runs/{run_id}/events", headers={"Last-Event-ID": "3"}
        ).text
    )
    assert [f["data"] for f in tail] == [f["data"] for f in on_a[4:]]
    # the wrong agent in the path is 404, as for local runs
    assert httpx.get(f"{b.url}/agents/echo/runs/{run_id}/events").status_code == 404
    assert httpx.get(f"{b.url}/agents/weather/runs/nope/events").status_code == 404


async def test_ownership_comes_from_the_run_record(tmp_path: Path) -> None:
    def tok(sub: str) -> dict[str, str]:
        t = jwt.encode(
            {"sub": sub, "scope": "runs", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
        )
        return {"Authorization": f"Bearer {t}"}

    db = tmp_path / "auth.db"
    a, b = _app(db, auth=JWTAuth(SECRET)), _app(db, auth=JWTAuth(SECRET))
    async with (
        a.lifespan(),
        b.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(a), base_url="http://t") as ca,
        httpx.AsyncClient(transport=httpx.ASGITransport(b), base_url="http://t") as cb,
    ):
        r = await ca.post("/agents/weather/runs", json={"input": "hi"}, headers=tok("alice"))
        run_id = r.json()["run_id"]
        url = f"/agents/weather/runs/{run_id}/events"
        bob = await cb.get(url, headers=tok("bob"))
        assert bob.status_code == 404  # same answer as for a run that does not exist
        assert bob.json()["error"]["code"] == "run_not_found"
        assert "alice" not in bob.text
        alice = await cb.get(url, headers=tok("alice"))
        assert alice.status_code == 200
        assert parse_sse(alice.text)[-1]["event"] == "run_completed"


async def test_single_worker_default_keeps_events_in_process(tmp_path: Path) -> None:
    st = SQLiteStorage(tmp_path / "one.db")
    app = VivaceApp(agents=make_agents(), storage=st, auth=False)
    other = VivaceApp(agents=make_agents(), storage=SQLiteStorage(tmp_path / "one.db"), auth=False)
    async with (
        app.lifespan(),
        other.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c,
        httpx.AsyncClient(transport=httpx.ASGITransport(other), base_url="http://t") as c2,
    ):
        assert isinstance(app.log, InMemoryEventLog)
        run_id = (await c.post("/agents/weather/runs", json={"input": "x"})).json()["run_id"]
        assert (await c.get(f"/agents/weather/runs/{run_id}/events")).status_code == 200
        assert await st.events.read(run_id) == []  # no extra writes
        assert (await c2.get(f"/agents/weather/runs/{run_id}/events")).status_code == 404


async def test_event_log_from_the_environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("VIVACE_EVENT_LOG", "storage")
    app = VivaceApp(agents=make_agents(), storage=InMemoryStorage(), auth=False)
    assert isinstance(app.asgi and app.log, StorageEventLog)
    monkeypatch.setenv("VIVACE_EVENT_LOG", "memory")
    app = VivaceApp(agents=make_agents(), storage=InMemoryStorage(), auth=False)
    assert isinstance(app.asgi and app.log, InMemoryEventLog)
    from vivace.errors import UserError

    with pytest.raises(UserError):
        VivaceApp(agents=make_agents(), event_log="redis")
    with pytest.raises(UserError):
        VivaceApp(agents=make_agents(), event_log="storage").asgi  # noqa: B018 - no storage


class _FailingEvents(InMemoryStorage):
    """A storage whose events domain is down (sessions work)."""

    def __init__(self) -> None:
        super().__init__()
        inner = self.events

        class Down(type(inner)):  # type: ignore[misc]
            async def append(self, *a: Any, **k: Any) -> int:
                raise StorageError("events table is down")

            async def append_many(self, *a: Any, **k: Any) -> int:
                raise StorageError("events table is down")

        self.events = Down()


async def test_a_storage_error_while_persisting_does_not_fail_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VivaceApp(agents=make_agents(), storage=_FailingEvents(), auth=False, event_log="storage")
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c,
    ):
        r = await c.post("/agents/weather/runs", json={"input": "x", "stream": True})
        frames = parse_sse(r.text)
        assert frames[-1]["event"] == "run_completed"
        assert _seqs(frames) == list(range(len(frames)))
        r = await c.post("/agents/weather/runs", json={"input": "x"})
        assert r.json()["status"] == "completed"
    assert "cannot persist its events" in caplog.text


async def test_a_resumed_run_continues_its_stored_events(tmp_path: Path) -> None:
    db = tmp_path / "resume.db"
    a, b = _app(db), _app(db)
    async with (
        a.lifespan(),
        b.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(a), base_url="http://t") as ca,
        httpx.AsyncClient(transport=httpx.ASGITransport(b), base_url="http://t") as cb,
    ):
        body = (await ca.post("/agents/approver/runs", json={"input": "delete"})).json()
        assert body["status"] == "paused"
        run_id, call_id = body["run_id"], body["paused"]["pending"][0]["id"]
        paused = parse_sse((await cb.get(f"/agents/approver/runs/{run_id}/events")).text)
        assert paused[-1]["event"] == "run_paused"
        r = await ca.post(
            f"/agents/approver/runs/{run_id}/resume", json={"approvals": {call_id: True}}
        )
        assert r.json()["status"] == "completed"
        url = f"/agents/approver/runs/{run_id}/events"
        for client in (ca, cb):  # the resuming worker and the other one agree
            whole = parse_sse((await client.get(url)).text)
            assert [f["data"] for f in whole[: len(paused)]] == [f["data"] for f in paused]
            assert whole[len(paused)]["event"] == "run_resumed"
            assert whole[-1]["event"] == "run_completed"
            assert _seqs(whole) == list(range(len(whole)))
            tail = parse_sse((await client.get(url, headers={"Last-Event-ID": "5"})).text)
            assert [f["data"] for f in tail] == [f["data"] for f in whole[6:]]


async def test_a_new_segment_numbered_from_zero_replaces_the_stored_one() -> None:
    st = InMemoryStorage()
    log = StorageEventLog(st, flush_interval=0.001)
    for segment in (["run_started", "run_paused"], ["run_resumed", "run_completed"]):
        log.open(RunInfo("r", "a"))
        log.append("r", {"type": segment[0], "run_id": "r", "seq": 0})
        await log.append_final("r", {"type": segment[1], "run_id": "r", "seq": 1})
        log.finish("r")
        await log.aclose()
        assert [e["type"] for e in await st.events.read("r")] == segment
        assert [e["type"] async for e in log.subscribe("r")] == segment


async def test_a_crashed_run_ends_the_stream(tmp_path: Path) -> None:
    """The run's worker died: its lease expired (incomplete), no terminal event will come."""
    st = SQLiteStorage(tmp_path / "crash.db")
    run_id = uuid.uuid4().hex
    await st.sessions.begin_run(RunRecord(run_id, "s", agent_id="weather"), lease=0.0)
    await st.events.append(
        run_id, [{"type": "run_started", "run_id": run_id, "seq": 0}, {"type": "x", "seq": 1}]
    )
    app = VivaceApp(agents=make_agents(), storage=st, auth=False, event_log="storage")
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c,
    ):
        r = await c.get(f"/agents/weather/runs/{run_id}/events")
        assert r.status_code == 200
        assert _seqs(parse_sse(r.text)) == [0, 1]
        r = await c.get(f"/agents/weather/runs/{run_id}/events", headers={"Last-Event-ID": "1"})
        assert parse_sse(r.text) == []


# -- real workers: ``vivace serve --workers 2`` on PostgreSQL ---------------------------------


@pytest.fixture
def pg_serve(postgres_url: str, serve_process: Any) -> Iterator[Any]:
    schema = "rc_" + uuid.uuid4().hex[:8]
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    with serve_process(
        "tests.server.apps_slow:app",
        "--workers",
        "2",
        "--storage",
        url,
        env={"VIVACE_EVENT_LOG": ""},
    ) as srv:
        yield srv


def _get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(
        url, headers={"connection": "close", **kw.pop("headers", {})}, timeout=20, **kw
    )


@pytest.mark.slow
def test_reconnect_lands_on_the_other_worker_mid_run(pg_serve: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    frames: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=20, headers={"connection": "close"}) as c,
        c.stream(
            "POST",
            pg_serve.url + "/agents/slow/runs",
            json={"input": f"gate:{gate}", "stream": True},
        ) as r,
    ):
        runner = r.headers["x-worker-pid"]
        run_id = r.headers["x-vivace-run-id"]
        frames = _read_until(r, "text_delta")  # a few events, then drop the connection
    url = f"{pg_serve.url}/agents/slow/runs/{run_id}/events"
    other_served = False
    for _ in range(60):  # a new connection each time, until the other worker answers
        with (
            httpx.Client(timeout=20, headers={"connection": "close"}) as c,
            c.stream("GET", url, headers={"Last-Event-ID": str(frames[-1]["data"]["seq"])}) as r,
        ):
            assert r.status_code == 200, r.read()
            if r.headers["x-worker-pid"] == runner:
                continue  # the runner itself: try again on a new connection
            other_served = True
            gate.touch()  # the run can finish only now, while the other worker streams it
            frames += parse_sse(r.read().decode())
            break
    assert other_served, "the kernel never picked the other worker"
    seqs = _seqs(frames)
    assert seqs == list(range(len(seqs))), seqs  # every seq exactly once, in order
    assert frames[-1]["event"] == "run_completed"
    text = "".join(f["data"]["text"] for f in frames if f["event"] == "text_delta")
    assert text == " ".join(f"w{i}" for i in range(14))


@pytest.mark.slow
def test_finished_run_reconnect_from_the_other_worker(pg_serve: Any, tmp_path: Path) -> None:
    r = httpx.post(
        pg_serve.url + "/agents/slow/runs",
        json={"input": "no gate", "stream": True},
        headers={"connection": "close"},
        timeout=20,
    )
    runner, run_id = r.headers["x-worker-pid"], r.headers["x-vivace-run-id"]
    full = parse_sse(r.text)
    assert full[-1]["event"] == "run_completed"
    for _ in range(60):
        r = _get(f"{pg_serve.url}/agents/slow/runs/{run_id}/events", headers={"Last-Event-ID": "2"})
        assert r.status_code == 200
        if r.headers["x-worker-pid"] != runner:
            assert [f["data"] for f in parse_sse(r.text)] == [f["data"] for f in full[3:]]
            break
    else:
        pytest.fail("the kernel never picked the other worker")


async def test_the_events_of_concurrent_runs_are_written_together() -> None:
    st = InMemoryStorage()
    writes: list[int] = []
    inner = st.events

    class Counting(type(inner)):  # type: ignore[misc]
        async def append_many(self, batches: Any) -> int:
            writes.append(len(batches))
            await asyncio.sleep(0.005)  # a database round trip
            return await super().append_many(batches)

    st.events = Counting()
    log = StorageEventLog(st, flush_interval=0.01)

    async def run(i: int) -> None:
        run_id = f"r{i}"
        log.open(RunInfo(run_id, "a"))
        log.append(run_id, {"type": "run_started", "run_id": run_id, "seq": 0})
        await asyncio.sleep(0.001 * (i % 5))
        log.append(run_id, {"type": "text_delta", "run_id": run_id, "seq": 1, "text": "x"})
        await log.append_final(run_id, {"type": "run_completed", "run_id": run_id, "seq": 2})
        # the end is visible only once everything before it is stored
        assert [e["seq"] for e in await st.events.read(run_id)] == [0, 1, 2]
        log.finish(run_id)

    await asyncio.gather(*(run(i) for i in range(40)))
    await log.aclose()
    assert sum(writes) >= 40 and len(writes) < 20  # group commits, not one write per run
    for i in range(40):
        assert [e["type"] async for e in log.subscribe(f"r{i}")] == [
            "run_started",
            "text_delta",
            "run_completed",
        ]
