"""A separate process that writes runs, for the multi-process integrity tests.

Usage: ``python proc_worker.py SPEC_JSON MODE SESSION_ID WORKER RUNS``. ``MODE`` is
``append`` (write RUNS runs, then print ``done``), ``hang`` (start one run with a short lease
kept alive, print ``started`` and sleep until killed) or ``loop`` (append runs forever, printing
``finished <run_id>`` after each one).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from vivace.messages import Message
from vivace.storage import HistoryWindow, RunRecord


def open_spec(spec: dict[str, Any]) -> Any:
    from vivace.storage import PostgresStorage, SQLiteStorage

    if spec["kind"] == "sqlite":
        return SQLiteStorage(spec["path"])
    return PostgresStorage(spec["url"], schema=spec["schema"])


async def one_run(st: Any, session_id: str, worker: int, i: int, lease: float = 60.0) -> str:
    rec = RunRecord(f"w{worker}-r{i}", session_id, agent_id="agent", user_id="u1")
    ctx = await st.sessions.begin_run(rec, history=HistoryWindow(last_runs=5), lease=lease)
    ctx.state[f"w{worker}_r{i}"] = i
    ctx.state[f"last_{worker}"] = i
    rec.messages = [Message.user(f"hello {worker}/{i}"), Message.assistant(f"hi {worker}/{i}")]
    rec.status = "completed"
    await st.sessions.finish_run(rec, state=ctx.state)
    return rec.run_id


async def main() -> None:
    spec = json.loads(sys.argv[1])
    mode, session_id, worker, runs = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    st = open_spec(spec)
    try:
        if mode == "append":
            for i in range(runs):
                await one_run(st, session_id, worker, i)
            print("done", flush=True)
        elif mode == "hang":
            from vivace.storage import keep_alive

            rec = RunRecord(f"w{worker}-hung", session_id, user_id="u1")
            await st.sessions.begin_run(rec, lease=2.0)
            async with keep_alive(st.sessions, rec.run_id, lease=2.0):  # alive until killed
                print("started", flush=True)
                await asyncio.sleep(3600)
        elif mode == "loop":
            i = 0
            while True:
                run_id = await one_run(st, session_id, worker, i, lease=0.5)
                print(f"finished {run_id}", flush=True)
                i += 1
    finally:
        await st.close()


if __name__ == "__main__":
    asyncio.run(main())
