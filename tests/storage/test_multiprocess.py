"""Integrity with real processes: concurrent appends and SIGKILL mid-run (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vivace.storage import HistoryWindow, RunRecord

WORKER = str(Path(__file__).with_name("proc_worker.py"))


def spawn(
    factory: Any, mode: str, session_id: str, worker: int, runs: int = 0
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            WORKER,
            json.dumps(factory.spec()),
            mode,
            session_id,
            str(worker),
            str(runs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def wait_for_status(st: Any, run_id: str, status: str, timeout: float = 20.0) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        run = await st.sessions.get_run(run_id)
        if run is not None and run.status == status:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is {run.status if run else None}, never {status}")
        await asyncio.sleep(0.1)


async def test_processes_appending_to_one_new_session_lose_and_duplicate_nothing(
    sql_factory: Any,
) -> None:
    workers, runs = 4, 12
    # the database and the session do not exist yet: the processes race to create both
    procs = [spawn(sql_factory, "append", "shared", w, runs) for w in range(workers)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "done"

    st = sql_factory()
    all_runs = await st.sessions.list_runs("shared")
    ids = [r.run_id for r in all_runs]
    assert len(ids) == workers * runs
    assert sorted(ids) == sorted(f"w{w}-r{i}" for w in range(workers) for i in range(runs))
    assert all(r.status == "completed" and len(r.messages) == 2 for r in all_runs)
    # each worker's own runs are stored in the order it wrote them
    for w in range(workers):
        mine = [i for i in ids if i.startswith(f"w{w}-")]
        assert mine == [f"w{w}-r{i}" for i in range(runs)]

    sessions = await st.sessions.list_sessions(user_id="u1")
    assert [s.session_id for s in sessions] == ["shared"]
    state = sessions[0].state
    expected = {f"w{w}_r{i}": i for w in range(workers) for i in range(runs)}
    expected.update({f"last_{w}": runs - 1 for w in range(workers)})
    assert state == expected

    ctx = await st.sessions.load_context("shared", user_id="u1", history=HistoryWindow())
    assert len(ctx.history) == 2 * workers * runs


async def test_a_killed_process_leaves_a_readable_session_and_an_incomplete_run(
    sql_factory: Any,
) -> None:
    st = sql_factory()
    for i in range(3):
        rec = RunRecord(f"before-{i}", "s", user_id="u1", status="completed")
        await st.sessions.finish_run(rec, state_changes={f"k{i}": i})

    proc = spawn(sql_factory, "hang", "s", 0)
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line.strip() == "started", proc.stderr.read() if proc.stderr else ""
    assert (await st.sessions.get_run("w0-hung")).status == "running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    run = await wait_for_status(st, "w0-hung", "incomplete")
    assert run.session_id == "s"
    ctx = await st.sessions.load_context("s", user_id="u1", history=HistoryWindow())
    assert ctx.state == {"k0": 0, "k1": 1, "k2": 2}
    assert [r.status for r in await st.sessions.list_runs("s")] == ["completed"] * 3 + [
        "incomplete"
    ]
    # the session goes on
    rec = RunRecord("after", "s", user_id="u1")
    await st.sessions.begin_run(rec)
    rec.status = "completed"
    await st.sessions.finish_run(rec, state_changes={"after": True})
    assert (await st.sessions.get_session("s")).state["after"] is True


async def test_killing_a_busy_writer_never_leaves_a_half_written_run(sql_factory: Any) -> None:
    proc = spawn(sql_factory, "loop", "busy", 0)
    assert proc.stdout is not None
    finished: list[str] = []
    while len(finished) < 8:
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line, proc.stderr.read() if proc.stderr else ""
        finished.append(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)  # somewhere inside the next runs' transactions
    proc.wait(timeout=30)

    st = sql_factory()
    runs = await st.sessions.list_runs("busy")
    by_id = {r.run_id: r for r in runs}
    assert set(finished) <= set(by_id)
    for r in runs:
        if r.status != "completed":
            r = await wait_for_status(st, r.run_id, "incomplete")
            assert r.messages == []
        else:
            assert [m.role for m in r.messages] == ["user", "assistant"]
    state = (await st.sessions.get_session("busy")).state
    for r in runs:
        i = int(r.run_id.split("-r")[1])
        assert (f"w0_r{i}" in state) == (r.status == "completed")
