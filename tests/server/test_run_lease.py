"""The run lease as a server option: ``vivace serve --run-lease`` and ``VivaceApp(run_lease=)``.

A run of a worker killed with SIGKILL reads ``running`` until its lease runs out, then
``incomplete``: with a short lease the crash shows quickly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from vivace import Agent
from vivace.errors import UserError
from vivace.server import VivaceApp
from vivace.storage import InMemoryStorage, SQLiteStorage
from vivace.testing import EchoModel


async def test_a_killed_workers_run_reads_incomplete_after_the_servers_lease(
    tmp_path: Path, serve_process: Any
) -> None:
    db = tmp_path / "v.db"
    gate = tmp_path / "never"
    srv = serve_process(
        "tests.server.apps_slow:app", "--storage", f"sqlite:///{db}", "--run-lease", "1.5"
    )
    with (
        srv,
        httpx.stream(
            "POST",
            srv.url + "/agents/slow/runs",
            json={"input": f"gate:{gate}", "stream": True, "session_id": "s"},
            timeout=30,
        ) as r,
    ):
        run_id = r.headers["x-vivace-run-id"]
        for line in r.iter_lines():
            if line.startswith("data:") and '"text_delta"' in line:
                break  # the run is in the middle of its answer, waiting at the gate
        storage = SQLiteStorage(str(db))
        record = await storage.sessions.get_run(run_id)
        assert record is not None and record.status == "running"
        assert record.lease_expires_at is not None
        assert record.lease_expires_at - time.time() <= 1.6  # the 1.5 s lease, not 60 s
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)
    deadline = time.monotonic() + 20
    while True:
        record = await storage.sessions.get_run(run_id)
        assert record is not None
        if record.status == "incomplete":
            break
        assert record.status == "running"
        assert time.monotonic() < deadline, "the run never read incomplete"
        time.sleep(0.2)
    await storage.close()


def test_run_lease_is_set_on_a_storage_url_and_refused_for_a_different_object(
    tmp_path: Path,
) -> None:
    app = VivaceApp(
        [Agent(EchoModel(), name="e")], storage=f"sqlite:///{tmp_path}/a.db", run_lease=7
    )
    assert app.storage.run_lease == 7
    with pytest.raises(UserError, match="run_lease is a setting of the storage"):
        VivaceApp([Agent(EchoModel(), name="e")], storage=InMemoryStorage(), run_lease=7)
    same = InMemoryStorage(run_lease=7)
    assert VivaceApp([Agent(EchoModel(), name="e")], storage=same, run_lease=7).storage is same
