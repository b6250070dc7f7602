"""SQLite's run seam runs inline on the event loop, and never makes the loop wait.

The write transactions of ``begin_run``/``finish_run`` (and event appends) run on the event
loop when the write lock is free; when another process (here: another connection) holds it,
they wait in the worker thread while the loop keeps running; WAL checkpoints happen in the
worker thread, not on the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from vivace.messages import Message
from vivace.storage import RunRecord
from vivace.storage.sql import SQLiteStorage


async def _run(st: SQLiteStorage, run_id: str, session_id: str = "s") -> None:
    rec = RunRecord(run_id, session_id, user_id="u1")
    await st.sessions.begin_run(rec)
    rec.status, rec.messages = "completed", [Message.user("q"), Message.assistant("a")]
    await st.sessions.finish_run(rec)


async def test_runs_are_written_on_the_event_loop_thread(tmp_path: Path) -> None:
    st = SQLiteStorage(str(tmp_path / "v.db"))
    threads: set[str] = set()
    await _run(st, "r0")  # set-up done
    db = st.sessions.engine._fast_connection()  # type: ignore[attr-defined]
    assert db is not None
    db.set_trace_callback(lambda sql: threads.add(threading.current_thread().name))
    await _run(st, "r1")
    assert threads == {threading.current_thread().name}
    assert (await st.sessions.get_run("r1")).status == "completed"
    await st.close()


async def test_a_writer_in_another_process_makes_runs_wait_off_the_loop(tmp_path: Path) -> None:
    path = str(tmp_path / "v.db")
    st = SQLiteStorage(path)
    await _run(st, "r0")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as another process would
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    start = time.monotonic()
    await _run(st, "r1")  # waits for the lock, in the worker thread
    waited = time.monotonic() - start
    stop.set()
    await t
    assert waited >= 0.4
    assert ticks >= 10  # the loop went on while the run waited
    assert (await st.sessions.get_run("r1")).status == "completed"
    other.close()
    await st.close()


async def _fill(path: Path, every: int) -> tuple[int, list[str]]:
    st = SQLiteStorage(str(path))
    engine = st.sessions.engine  # type: ignore[attr-defined]
    engine.CHECKPOINT_EVERY = every
    engine.RESTART_EVERY = 2
    await _run(st, "warm")
    seen: list[str] = []
    engine._fast_connection().set_trace_callback(seen.append)
    for i in range(300):
        await _run(st, f"r{i}", session_id=f"s{i % 7}")
        await asyncio.sleep(0)
    for _ in range(200):
        if not engine._checkpointing:
            break
        await asyncio.sleep(0.01)
    size = Path(str(path) + "-wal").stat().st_size
    assert len(await st.sessions.list_runs("s0")) == 43
    await st.close()
    return size, seen


async def test_checkpoints_run_off_the_loop_and_bound_the_wal(tmp_path: Path) -> None:
    with_checkpoints, seen = await _fill(tmp_path / "a.db", 100)
    without, _ = await _fill(tmp_path / "b.db", 10**9)
    assert not any("checkpoint" in s.lower() for s in seen)  # never on the loop's connection
    # the WAL starts over after each checkpoint instead of growing with every run
    assert with_checkpoints < without / 2


async def test_writes_queued_behind_a_held_write_all_resume_together(tmp_path: Path) -> None:
    """A write that awaits while it holds the writer (here ``heartbeat``, a SQLAlchemy write
    in the worker thread, as every run's lease renewal is) makes the runs that want to write
    meanwhile wait; when it ends they all go on in the same pass of the loop, and later runs
    do not wait at all. (With an ``asyncio.Lock`` taken by every write, the waiters were
    handed the lock one per loop pass, and the queue kept every later write waiting too: at 64
    concurrent runs that convoy cost 0.5 ms of CPU per run.)"""
    st = SQLiteStorage(str(tmp_path / "v.db"))
    await _run(st, "warm")
    await st.sessions.begin_run(RunRecord("held", "s-held", user_id="u1"))
    passes = 0
    stop = False

    async def ticker() -> None:
        nonlocal passes
        while not stop:
            passes += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    held = asyncio.create_task(st.sessions.heartbeat("held", lease=60))
    await asyncio.sleep(0)  # it takes the writer and waits for its thread
    queued = [asyncio.create_task(_run(st, f"q{i}", session_id=f"s{i}")) for i in range(40)]
    await asyncio.sleep(0)
    assert not any(q.done() for q in queued)  # they wait for the held write
    assert await held is True
    start = passes
    await asyncio.gather(*queued)
    assert passes - start <= 6  # not one pass per waiting write
    start = passes
    await asyncio.gather(*(_run(st, f"later{i}", session_id=f"t{i}") for i in range(40)))
    assert passes - start <= 4  # no queue left behind: later writes never wait
    stop = True
    await t
    ids = [f"q{i}" for i in range(40)] + [f"later{i}" for i in range(40)]
    assert {(await st.sessions.get_run(i)).status for i in ids} == {"completed"}
    await st.close()


def test_sync_runs_from_several_threads_share_one_storage(tmp_path: Path) -> None:
    """Each thread's ``run()`` has its own event loop and writer gate; the inline connection
    is used by one of them at a time and the others write through the worker thread. Every
    run is stored whole, the session counts every visit, and the file stays sound."""
    from vivace import Agent
    from vivace.testing import FunctionModel, call

    def lookup(city: str) -> str:
        return f"Sunny in {city}"

    def script(messages: list[Message], request: object) -> object:
        if messages[-1].role == "tool":
            return "It is sunny."
        return call("lookup", {"city": "Paris"})

    st = SQLiteStorage(str(tmp_path / "v.db"))
    agent = Agent(model=FunctionModel(script), tools=[lookup], storage=st, name="w")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(60):
                result = agent.run("hi", session_id="shared", user_id="u1", run_id=f"t{n}-{i}")
                assert result.status == "completed", result.error
                agent.run("again", session_id=f"own-{n}", user_id="u1")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    async def check() -> None:
        runs = await st.sessions.list_runs("shared")
        assert len(runs) == 240 and {r.status for r in runs} == {"completed"}
        assert all(len(r.messages) == 4 for r in runs)
        for n in range(4):
            assert len(await st.sessions.list_runs(f"own-{n}")) == 60

    asyncio.run(check())
    db = sqlite3.connect(str(tmp_path / "v.db"))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_a_thread_that_ends_leaves_no_checkpoint_behind(tmp_path: Path) -> None:
    """A checkpoint started by a sync ``run()`` in a thread that then ends still finishes: it
    is not a task of that thread's event loop, which never runs again (that left "Task was
    destroyed but it is pending!" at exit, and held the loop's writers)."""
    script = f"""
import threading
from vivace import Agent
from vivace.storage.sql import SQLiteStorage
from vivace.testing import FunctionModel

st = SQLiteStorage({str(tmp_path / "v.db")!r})
st.sessions.engine.CHECKPOINT_EVERY = 2  # a checkpoint at nearly every run's end
agent = Agent(model=FunctionModel(lambda messages, request: "ok"), storage=st)

def work(n):
    for i in range(5):
        assert agent.run("hi", session_id=f"s{{n}}").status == "completed"

threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
del threads
import gc; gc.collect()
print("done", flush=True)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout
    assert "Task was destroyed" not in out.stderr, out.stderr
