"""Cancel a run from a worker that is not running it (several workers sharing storage).

Fast tests use two apps in one process sharing one SQLite file, each with its own storage
object, event log and live runs - two workers in all but pid. The slow test runs
``vivace serve --workers 2`` on PostgreSQL and sends cancel requests until the worker that
does not run the run answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from vivace import Agent
from vivace.server import JWTAuth, VivaceApp
from vivace.storage import SQLiteStorage, open_storage

from .apps_slow import GatedModel
from .conftest import parse_sse

SECRET = "cancel-test-secret-long-enough-for-hs256"


def _app(db: Path, **kw: Any) -> VivaceApp:
    kw.setdefault("auth", False)
    kw.setdefault("event_log", "storage")
    agent = Agent(model=GatedModel(), name="slow")
    return VivaceApp(agents=[agent], storage=SQLiteStorage(db), **kw)


def _read_until(chunks: Iterator[str], event: str) -> tuple[list[dict[str, Any]], str]:
    """Frames up to and including the first ``event`` one, and the text read after them."""
    buf = ""
    for chunk in chunks:
        buf += chunk
        head, _, rest = buf.rpartition("\n\n")
        frames = parse_sse(head + "\n\n") if head else []
        if any(f["event"] == event for f in frames):
            return frames, rest
    raise AssertionError(f"stream ended before {event}: {buf!r}")


def _seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["data"]["seq"] for f in frames]


def test_cancel_through_another_worker(tmp_path: Path, thread_server: Any) -> None:
    db = tmp_path / "shared.db"
    gate = tmp_path / "gate"  # never opened: only a cancel ends the run
    with (
        thread_server(_app(db)) as a,
        thread_server(_app(db)) as b,
        httpx.Client(timeout=30) as ca,
        httpx.Client(timeout=30) as cb,
        ca.stream(
            "POST", a.url + "/agents/slow/runs", json={"input": f"gate:{gate}", "stream": True}
        ) as r,
    ):
        run_id = r.headers["x-vivace-run-id"]
        chunks = r.iter_text()
        first, tail = _read_until(chunks, "text_delta")  # the run is running (in storage too)
        url = f"{b.url}/agents/slow/runs/{run_id}/cancel"
        assert cb.post(f"{b.url}/agents/slow/runs/nope/cancel").status_code == 404
        assert cb.post(f"{b.url}/agents/other/runs/{run_id}/cancel").status_code == 404
        resp = cb.post(url)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"run_id": run_id, "cancelled": True}
        frames = first + parse_sse(tail + "".join(chunks))
        assert frames[-1]["event"] == "run_cancelled"
        assert _seqs(frames) == list(range(len(frames)))
        text = "".join(f["data"]["text"] for f in frames if f["event"] == "text_delta")
        assert not text.endswith("w13")  # it stopped mid-answer
        again = cb.post(url)  # now it is over: not running
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "run_not_running"
        # the other worker serves the same end from storage
        on_b = parse_sse(cb.get(f"{b.url}/agents/slow/runs/{run_id}/events").text)
        assert [f["data"] for f in on_b] == [f["data"] for f in frames]

    async def stored() -> Any:
        st = SQLiteStorage(db)
        try:
            return await st.sessions.get_run(run_id)
        finally:
            await st.close()

    record = asyncio.run(stored())
    assert record.status == "cancelled"
    assert record.error is not None and record.error["code"] == "run_cancelled"


async def test_cancel_on_another_worker_checks_the_owner(tmp_path: Path) -> None:
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
        body = {"input": f"gate:{tmp_path / 'never'}", "session_id": "s1"}
        started = asyncio.create_task(ca.post("/agents/slow/runs", json=body, headers=tok("alice")))
        assert b.storage is not None
        for _ in range(200):  # until the run is running in storage
            runs = await b.storage.sessions.list_runs("s1", statuses=["running"])
            if runs:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail(f"the run never started: {started.done() and started.result().text}")
        run_id = runs[0].run_id
        url = f"/agents/slow/runs/{run_id}/cancel"
        bob = await cb.post(url, headers=tok("bob"))
        assert bob.status_code == 404  # same answer as for a run that does not exist
        assert "alice" not in bob.text
        assert not started.done()
        alice = await cb.post(url, headers=tok("alice"))
        assert alice.status_code == 200, alice.text
        result = (await asyncio.wait_for(started, 20)).json()  # the JSON answer on worker A
        assert result["run_id"] == run_id
        assert result["status"] == "cancelled"
        record = await b.storage.sessions.get_run(run_id)
        assert record.status == "cancelled"
        assert await b.storage.sessions.cancel_requested(run_id) is False


async def test_one_worker_never_reads_cancel_requests(tmp_path: Path) -> None:
    """The in-process log (one worker): no polling, and a run of another process is unknown."""
    db = tmp_path / "one.db"
    a, b = _app(db, event_log="memory"), _app(db, event_log="memory")
    async with (
        a.lifespan(),
        b.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(b), base_url="http://t") as cb,
    ):
        assert a.runs.sessions_for("slow") is None
        assert b.storage is not None
        run_id = uuid.uuid4().hex
        stream = a.agents["slow"].astream(f"gate:{tmp_path / 'never'}", run_id=run_id)
        from vivace.server.sse import RunInfo

        task = a.runs.start(RunInfo(run_id, "slow"), stream)
        for _ in range(200):
            record = await b.storage.sessions.get_run(run_id)
            if record is not None:
                break
            await asyncio.sleep(0.02)
        assert (await cb.post(f"/agents/slow/runs/{run_id}/cancel")).status_code == 404
        assert a.runs.cancel(run_id)  # its own worker can
        result = await asyncio.wait_for(task, 20)
        assert result is not None and result.status == "cancelled"


# -- real workers: ``vivace serve --workers 2`` on PostgreSQL ---------------------------------


@pytest.fixture
def pg_serve(postgres_url: str, serve_process: Any) -> Iterator[tuple[Any, str]]:
    schema = "cc_" + uuid.uuid4().hex[:8]
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    with serve_process(
        "tests.server.apps_slow:app",
        "--workers",
        "2",
        "--storage",
        url,
        env={"VIVACE_EVENT_LOG": ""},
    ) as srv:
        yield srv, url


@pytest.mark.slow
def test_cancel_lands_on_the_other_worker(pg_serve: tuple[Any, str], tmp_path: Path) -> None:
    srv, storage_url = pg_serve
    gate = tmp_path / "gate"  # never opened
    with (
        httpx.Client(timeout=30, headers={"connection": "close"}) as c,
        c.stream(
            "POST", srv.url + "/agents/slow/runs", json={"input": f"gate:{gate}", "stream": True}
        ) as r,
    ):
        runner, run_id = r.headers["x-worker-pid"], r.headers["x-vivace-run-id"]
        chunks = r.iter_text()
        frames, tail = _read_until(chunks, "text_delta")
        url = f"{srv.url}/agents/slow/runs/{run_id}/cancel"
        resp = None
        for _ in range(60):  # a new connection each time, until the other worker answers
            with httpx.Client(timeout=20) as other:
                # probe the connection's worker first: the cancel then goes on the same
                # (kept-alive) connection, so the runner never sees it
                if other.get(srv.url + "/health").headers["x-worker-pid"] == runner:
                    continue
                resp = other.post(url)
                assert resp.headers["x-worker-pid"] != runner
                break
        assert resp is not None, "the kernel never picked the other worker"
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"run_id": run_id, "cancelled": True}
        frames += parse_sse(tail + "".join(chunks))
    assert frames[-1]["event"] == "run_cancelled"
    assert _seqs(frames) == list(range(len(frames)))

    async def stored() -> Any:
        st = open_storage(storage_url)
        try:
            return await st.sessions.get_run(run_id)
        finally:
            await st.close()

    assert asyncio.run(stored()).status == "cancelled"
