"""Real OS processes: resume from a second process in every construct, exactly-once resumes
across processes, SIGKILL mid-run and recovery, cron schedules with two workers.

Slow by nature (each worker process imports Vivace); no timing asserts: every wait is for a
condition, with generous deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest

from tests.workflows.conftest import parse_result, run_proc, start_proc
from tests.workflows.flows import build, read_log

pytestmark = pytest.mark.slow

OK = json.dumps({"ok": True})


def _open(spec: dict[str, Any]) -> Any:
    from vivace.storage import PostgresStorage, SQLiteStorage

    if spec["kind"] == "sqlite":
        return SQLiteStorage(spec["path"])
    return PostgresStorage(spec["url"], schema=spec["schema"])


async def _close(wfs: dict[str, Any]) -> None:
    await next(iter(wfs.values())).storage.close()


async def test_every_construct_resumed_from_a_second_process(
    sql_spec: dict[str, Any], step_log: str
) -> None:
    wfs = build(_open(sql_spec))
    try:
        # nested: suspended here, resumed there
        r = await wfs["nested"].arun(1, run_id="nested-1")
        assert r.status == "suspended"
        out = run_proc(sql_spec, "resume", "nested", "nested-1", "inner.approve", OK)
        assert out["status"] == "completed" and out["output"] == {"final": 200}
        # parallel: two branches suspended; each resumed by its own process, right first
        r = await wfs["parallel"].arun(3, run_id="par-1")
        assert sorted(s.path for s in r.suspended) == ["left", "right"]
        out = run_proc(sql_spec, "resume", "parallel", "par-1", "right", json.dumps({"ok": False}))
        assert out["status"] == "suspended" and [s["path"] for s in out["suspended"]] == ["left"]
        out = run_proc(sql_spec, "resume", "parallel", "par-1", "left", OK)
        assert out["output"] == {"final": {"left": 300, "right": -3, "plain": 1003}}
        # branch
        await wfs["branch"].arun(9, run_id="br-1")
        out = run_proc(sql_spec, "resume", "branch", "br-1", "big", OK)
        assert out["output"] == {"final": {"big": 1000}}
        # loop iteration 3
        await wfs["loop"].arun(0, run_id="loop-1")
        out = run_proc(sql_spec, "resume", "loop", "loop-1", "tick[3]", OK)
        assert out["output"] == {"final": 6}
        # foreach item 37 of 100
        r = await wfs["foreach"].arun(list(range(100)), run_id="fe-1")
        assert [s.path for s in r.suspended] == ["item[37]"]
        out = run_proc(sql_spec, "resume", "foreach", "fe-1", "item[37]", OK)
        assert out["status"] == "completed" and out["output"]["final"][37] == 1037
        # the final state is visible to this process too
        got = await wfs["foreach"].get_run("fe-1")
        assert got.status == "completed" and got.output["final"][36] == 36
    finally:
        await _close(wfs)
    counts = Counter(read_log(step_log))
    assert counts["plain"] == 1 and counts["left"] == 2 and counts["right"] == 2
    assert counts["item[37]"] == 2 and counts["item[36]"] == 1
    assert counts["tick[2]"] == 1 and counts["tick[3]"] == 2


async def test_two_processes_resume_the_same_step_one_wins(
    sql_spec: dict[str, Any], step_log: str
) -> None:
    wfs = build(_open(sql_spec))
    try:
        await wfs["nested"].arun(1, run_id="race-1")
    finally:
        await _close(wfs)
    at = str(time.time() + 4.0)  # both processes are up by then
    procs = [
        start_proc(sql_spec, "resume", "nested", "race-1", "inner.approve", OK, at)
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        outs.append(parse_result(stdout, stderr))
    winners = [o for o in outs if "workflow" in o]  # a result
    losers = [o for o in outs if "workflow" not in o]  # a typed error
    assert len(winners) == 1 and winners[0]["status"] == "completed"
    assert len(losers) == 1 and losers[0]["error"] == "step_not_suspended"
    assert losers[0]["step"] == "inner.approve"
    assert Counter(read_log(step_log))["finish"] == 1


def _wait_for(cond: Any, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("name", ["crash", "crash_once"])
async def test_sigkill_mid_run_then_recovery(
    sql_spec: dict[str, Any], step_log: str, name: str
) -> None:
    spec = {**sql_spec, "lease": 1.0}
    hang = {"VIVACE_WF_HANG": "1"}
    p = start_proc(spec, "start", name, f"{name}-1", "1", env=hang)
    try:
        _wait_for(lambda: "crashy" in read_log(step_log))
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
    before = Counter(read_log(step_log))
    assert before["crashy"] == 1 and before["finish"] == 0
    # a new process finds the run (its lease expires) and continues it
    out = run_proc(spec, "recover", name, env=hang)
    assert isinstance(out, list) and len(out) == 1
    result = out[0]
    after = Counter(read_log(step_log))
    assert after["start"] == 1  # completed steps never run again
    if name == "crash":
        assert result["status"] == "completed" and result["output"] == {"final": 1003}
        assert after["plain"] == 1
        assert after["crashy"] == 2  # the step in flight ran again (at-least-once)
        assert after["finish"] == 1
    else:
        assert result["status"] == "failed"
        assert result["error"]["code"] == "step_interrupted"
        assert result["error"]["details"]["step"] == "crashy"
        assert after["crashy"] == 1 and after["finish"] == 0
    wfs = build(_open(spec))
    try:
        got = await wfs[name].get_run(f"{name}-1")
        assert got.status == result["status"]
    finally:
        await _close(wfs)


async def test_a_schedule_fires_once_per_tick_with_two_workers(
    sql_spec: dict[str, Any], step_log: str
) -> None:
    procs = [start_proc(sql_spec, "schedule", "6") for _ in range(2)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        outs.append(parse_result(stdout, stderr))
    assert all(o == {"done": True} for o in outs)
    storage = _open(sql_spec)
    try:
        runs = await storage.workflows.list_runs(workflow="every_second", limit=1000)
    finally:
        await storage.close()
    ticks = [r.run_id for r in runs]
    assert len(ticks) >= 2  # both workers were up for several ticks
    assert len(set(ticks)) == len(ticks)
    assert all(r.status == "completed" for r in runs)
    # each tick's step ran exactly once, in one of the two workers
    with open(step_log) as f:
        ran = Counter(line.split()[1] for line in f if line.strip())
    assert set(ran) == set(ticks) and set(ran.values()) == {1}
