"""The DBOS engine on a real PostgreSQL: two worker processes share a queue, a killed
worker's runs complete on its restart without re-running completed steps, suspend/resume.

The test process only enqueues (a DBOS client); workers are real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.flows import build, read_log

pytest.importorskip("dbos")
pytestmark = pytest.mark.slow

DBOS_PROC = str(Path(__file__).with_name("dbos_proc.py"))
OK = {"ok": True}


@pytest.fixture
async def pg(postgres_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A PostgreSQL schema for Vivace's tables and one for DBOS's, dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    spec = {
        "kind": "postgres",
        "url": postgres_url,
        "schema": f"v_{tag}",
        "dbos_schema": f"dbos_{tag}",
    }
    yield spec
    from vivace.workflows.engines import dbos as vdbos

    vdbos.shutdown()
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        for schema in (spec["schema"], spec["dbos_schema"]):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


class Workers:
    """Worker processes; each prints READY once DBOS is launched."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, executor_id: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, DBOS_PROC, json.dumps(self.spec), executor_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert p.stdout is not None
        line = p.stdout.readline()  # blocks until launched (or the process died)
        if line.strip() != "READY":
            p.kill()
            raise AssertionError(f"worker {executor_id} did not start: {line}{p.stderr.read()}")  # type: ignore[union-attr]
        self.procs[executor_id] = p
        return p

    def kill(self, executor_id: str) -> None:
        p = self.procs.pop(executor_id)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=60)

    def stop_all(self) -> None:
        for p in self.procs.values():
            try:
                assert p.stdin is not None
                p.stdin.close()
                p.wait(timeout=30)
            except Exception:
                p.kill()
                p.wait(timeout=30)
        self.procs.clear()


@pytest.fixture
def workers(pg: dict[str, Any]) -> Iterator[Workers]:
    w = Workers(pg)
    try:
        yield w
    finally:
        w.stop_all()


def _flows(spec: dict[str, Any]) -> dict[str, Any]:
    from vivace.storage import PostgresStorage
    from vivace.workflows.engines import dbos as vdbos

    vdbos.configure(spec["url"], schema=spec["dbos_schema"])
    return build(PostgresStorage(spec["url"], schema=spec["schema"]), engine="dbos")


async def _close(wfs: dict[str, Any]) -> None:
    await next(iter(wfs.values())).storage.close()


async def test_two_workers_share_the_queue_50_runs_each_once(
    pg: dict[str, Any], workers: Workers, step_log: str
) -> None:
    import asyncio

    workers.start("w1")
    workers.start("w2")
    wfs = _flows(pg)
    try:
        results = await asyncio.gather(
            *(wfs["crash"].arun(i, run_id=f"run-{i}", timeout=240) for i in range(50))
        )
    finally:
        await _close(wfs)
    assert all(r.status == "completed" for r in results)
    assert [r.output for r in results] == [{"final": i + 1002} for i in range(50)]
    with open(step_log) as f:
        rows = [line.split() for line in f if line.strip()]
    per_run_step = Counter((path, run_id) for path, run_id, _ in rows)
    assert len(per_run_step) == 200 and set(per_run_step.values()) == {1}  # each step once
    pids = {pid for _, _, pid in rows}
    assert len(pids) == 2  # both workers took runs from the queue


async def test_a_killed_worker_recovers_its_runs_on_restart(
    pg: dict[str, Any], workers: Workers, step_log: str
) -> None:
    hang = {"VIVACE_WF_HANG": "1"}
    workers.start("w1", env=hang)
    wfs = _flows(pg)
    try:
        first = await wfs["crash"].arun(1, run_id="doomed", wait=False)
        assert first.status == "running"
        deadline = time.time() + 120
        while "crashy" not in read_log(step_log):
            assert time.time() < deadline, "the run never reached its third step"
            time.sleep(0.05)
        workers.kill("w1")
        before = Counter(read_log(step_log))
        assert before["start"] == 1 and before["plain"] == 1 and before["finish"] == 0
        workers.start("w1", env=hang)  # same executor id: DBOS recovers what it held
        from vivace.workflows.engines.dbos import _wait

        done = await _wait(wfs["crash"], "doomed", 240)
    finally:
        await _close(wfs)
    assert done.status == "completed" and done.output == {"final": 1003}
    after = Counter(read_log(step_log))
    assert after["start"] == 1 and after["plain"] == 1  # checkpointed: not re-executed
    assert after["crashy"] == 2  # the step in flight ran again
    assert after["finish"] == 1


async def test_suspend_and_resume_on_dbos(
    pg: dict[str, Any], workers: Workers, step_log: str
) -> None:
    workers.start("w1")
    workers.start("w2")
    wfs = _flows(pg)
    wf = wfs["parallel"]
    try:
        r = await wf.arun(3, run_id="par-dbos", timeout=240)
        assert r.status == "suspended"
        assert sorted(s.path for s in r.suspended) == ["left", "right"]
        r2 = await wf.aresume("par-dbos", step="right", data={"ok": False})
        assert r2.status == "suspended" and [s.path for s in r2.suspended] == ["left"]
        from vivace.workflows import StepNotSuspended

        with pytest.raises(StepNotSuspended):
            await wf.aresume("par-dbos", step="right", data=OK)
        done = await wf.aresume("par-dbos", step="left", data=OK)
        assert done.status == "completed"
        assert done.output == {"final": {"left": 300, "right": -3, "plain": 1003}}
        # a loop iteration, on DBOS too
        lp = await wfs["loop"].arun(0, run_id="loop-dbos", timeout=240)
        assert [s.path for s in lp.suspended] == ["tick[3]"]
        lp2 = await wfs["loop"].aresume("loop-dbos", step="tick[3]", data=OK)
        assert lp2.output == {"final": 6}
    finally:
        await _close(wfs)
    log = Counter(read_log(step_log))
    assert log["plain"] == 1 and log["left"] == 2 and log["right"] == 2 and log["finish"] == 2
    assert log["tick[2]"] == 1 and log["tick[3]"] == 2
