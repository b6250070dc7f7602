"""SQL workflow runs and steps, with their tables.

``vivace_workflow_runs`` holds one row per run; ``vivace_workflow_steps`` one row per executed
step (primary key ``(run_id, path)``; SQLite: ``WITHOUT ROWID``, so the key is the table), the
step record as JSON text. A step's write is one single-statement upsert of its own row: its
cost does not grow with the number of steps of the run.

SQLite: statements run inline on the event loop on the module's own two ``sqlite3``
connections to the storage's file - one with ``busy_timeout=0`` (they take microseconds),
and, when another process holds the write lock, one in a worker thread that waits up to
``busy_timeout``, so the loop never waits for a lock (a thread hop per step would cost more
than the write). Claims that read then write (resumes, parking, recovery) use
``BEGIN IMMEDIATE``. An in-memory SQLite database uses the engine's own connection.

PostgreSQL: asyncpg through the engine's pool (``engine.driver()``), one round trip per step
write; claims take ``FOR UPDATE`` row locks (``SKIP LOCKED`` for recovery), so exactly one
worker wins each.

The old ``vivace_workflow_snapshots`` table (schema version 1) stays declared so databases
created by earlier versions keep their shape; nothing writes it any more.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from ...errors import VivaceError, WorkflowRunNotFound
from ..base import CANCELLED_BY_REQUEST, WorkflowStore, claim_parked, mark_resumed
from ..inmemory.workflows import wf_dumps
from ..records import (
    WORKFLOW_FINAL,
    WORKFLOW_PARKED,
    ResumeOutcome,
    StepRecord,
    WorkflowRunRecord,
)
from ._engine import Engine
from .schema import ID, BigId, Time, metadata

__all__ = ["SQLWorkflows", "workflow_runs", "workflow_snapshots", "workflow_steps"]

_T = TypeVar("_T")

workflow_snapshots = sa.Table(
    "vivace_workflow_snapshots",
    metadata,
    sa.Column("workflow", ID, primary_key=True),
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("status", sa.String(64)),
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_vivace_wf_updated", "updated_at"),
    info={"since": 1},
)

workflow_runs = sa.Table(
    "vivace_workflow_runs",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("workflow", ID, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input", sa.Text),
    sa.Column("output", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("state", sa.Text),
    sa.Column("state_seq", BigId, nullable=False, server_default="-1"),
    sa.Column("seq", BigId, nullable=False, server_default="0"),
    sa.Column("suspended", sa.Text),
    sa.Column("user_id", ID),
    sa.Column("parent_run_id", ID),
    sa.Column("origin_run_id", ID),
    sa.Column("trace_id", sa.String(64)),
    sa.Column("span_id", sa.String(64)),
    sa.Column("owner", sa.String(256)),
    sa.Column("lease_expires_at", Time),
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
    sa.Column("engine", sa.String(16)),
    sa.Column("metadata", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_vivace_workflow_runs_workflow", "workflow", "created_at"),
    sa.Index("ix_vivace_workflow_runs_status", "status", "lease_expires_at"),
    sa.Index("ix_vivace_workflow_runs_user", "user_id", "created_at"),
)

workflow_steps = sa.Table(
    "vivace_workflow_steps",
    metadata,
    sa.Column("run_id", ID, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("seq", BigId, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "path"),
    sqlite_with_rowid=False,
)

RUNS, STEPS = workflow_runs.name, workflow_steps.name
_JSON_COLS = ("input", "output", "error", "state", "suspended", "metadata")
_RUN_COLS = tuple(c.name for c in workflow_runs.columns)
_R_COLS = ", ".join(f'"{c}"' for c in _RUN_COLS)


def _run_params(run: WorkflowRunRecord) -> dict[str, Any]:
    d = run.to_dict()
    for c in _JSON_COLS:
        d[c] = wf_dumps(d[c])
    d["cancel_requested"] = 1 if d["cancel_requested"] else 0
    return d


def _run_from_row(row: Any) -> WorkflowRunRecord:
    d = dict(zip(_RUN_COLS, row, strict=True))
    for c in _JSON_COLS:
        v = d[c]
        d[c] = json.loads(v) if v is not None else None
    d["suspended"] = d["suspended"] or []
    d["metadata"] = d["metadata"] or {}
    d["cancel_requested"] = bool(d["cancel_requested"])
    return WorkflowRunRecord.from_dict(d)


def _step_from(data: str) -> StepRecord:
    return StepRecord.from_dict(json.loads(data))


def _step_args(run_id: str, s: StepRecord) -> tuple[Any, ...]:
    return (run_id, s.path, s.status, s.seq, wf_dumps(s.to_dict()))


def SQLWorkflows(engine: Engine) -> WorkflowStore:
    """The workflow domain on ``engine`` (SQLite or PostgreSQL)."""
    if engine.dialect == "postgresql":
        return PgWorkflows(engine)
    return LiteWorkflows(engine)


def _filters(
    workflow: str | None, statuses: Collection[str] | None, user_id: str | None, pg: bool
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def mark() -> str:
        return f"${len(args) + 1}" if pg else "?"

    if workflow is not None:
        clauses.append(f"workflow = {mark()}")
        args.append(workflow)
    if statuses is not None:
        sts = list(statuses)
        if not sts:
            clauses.append("1 = 0")
        else:
            marks = []
            for s in sts:
                marks.append(mark())
                args.append(s)
            clauses.append(f"status IN ({', '.join(marks)})")
    if user_id is not None:
        clauses.append(f"user_id = {mark()}")
        args.append(user_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


# -- SQLite ----------------------------------------------------------------------------------

_Q_STEP = f"INSERT OR REPLACE INTO {STEPS} (run_id, path, status, seq, data) VALUES (?, ?, ?, ?, ?)"
_Q_CREATE = (
    f"INSERT INTO {RUNS} ({_R_COLS}) VALUES ({', '.join(':' + c for c in _RUN_COLS)}) "
    "ON CONFLICT (run_id) DO NOTHING"
)
_Q_GET = f"SELECT {_R_COLS} FROM {RUNS} WHERE run_id = ?"
_Q_STEPS = f"SELECT data FROM {STEPS} WHERE run_id = ? ORDER BY seq"
_Q_FINISH = (
    f"UPDATE {RUNS} SET status = :status, output = :output, error = :error, state = :state, "
    "state_seq = :state_seq, seq = :seq, suspended = :suspended, "
    "lease_expires_at = :lease_expires_at, updated_at = :updated_at, "
    "cancel_requested = CASE WHEN :status = 'running' THEN cancel_requested ELSE 0 END "
    "WHERE run_id = :run_id AND (owner IS NULL OR :owner IS NULL OR owner = :owner)"
)


def _call(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T], tx: bool) -> _T:
    if not tx:
        return fn(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


class LiteWorkflows(WorkflowStore):
    """The workflow domain on SQLite (see the module docstring)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._fast: sqlite3.Connection | None = None
        self._slow: sqlite3.Connection | None = None
        self._fast_lock = threading.Lock()
        self._slow_lock = threading.Lock()

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.engine.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    async def _do(self, fn: Callable[[sqlite3.Connection], _T], *, tx: bool = False) -> _T:
        """``fn(conn)`` inline (no lock wait), else in a thread that may wait."""
        engine = self.engine
        if engine.path == ":memory:":  # one private database: the engine's own connection
            return await engine.raw_write(fn)
        if self._fast is None:
            await engine.ready()  # tables created or upgraded
            if self._fast is None:
                self._slow = self._connect(engine.busy_timeout)
                self._fast = self._connect(0.0)
        fast, slow = self._fast, self._slow
        assert fast is not None and slow is not None
        try:
            with self._fast_lock:
                return _call(fast, fn, tx)
        except VivaceError:
            raise
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise engine.translate(exc) from exc
        except sqlite3.Error as exc:
            raise engine.translate(exc) from exc

        def in_thread() -> _T:
            with self._slow_lock:
                return _call(slow, fn, tx)

        try:
            return await asyncio.to_thread(in_thread)
        except VivaceError:
            raise
        except sqlite3.Error as exc:
            raise engine.translate(exc) from exc

    async def close(self) -> None:
        for conn in (self._fast, self._slow):
            if conn is not None:
                conn.close()
        self._fast = self._slow = None

    async def create_run(self, run: WorkflowRunRecord, *, lease: float = 30.0) -> bool:
        now = time.time()
        run.lease_expires_at = None if run.engine == "dbos" else now + lease
        run.updated_at = now
        params = _run_params(run)
        return await self._do(lambda c: c.execute(_Q_CREATE, params).rowcount == 1)

    async def save_step(self, run_id: str, step: StepRecord) -> None:
        args = _step_args(run_id, step)
        await self._do(lambda c: c.execute(_Q_STEP, args))

    async def finish_run(
        self, run: WorkflowRunRecord, *, owner: str | None, steps: Sequence[StepRecord] = ()
    ) -> list[StepRecord]:
        run.updated_at = time.time()
        if run.status != "running":
            run.lease_expires_at = None
        params = _run_params(run)
        params["owner"] = owner
        step_args = [_step_args(run.run_id, s) for s in steps]
        parked = [p["path"] for p in run.suspended] if run.status in WORKFLOW_PARKED else []

        def fn(c: sqlite3.Connection) -> list[StepRecord]:
            if step_args:
                c.executemany(_Q_STEP, step_args)
            if parked:
                marks = ", ".join("?" for _ in parked)
                rows = c.execute(
                    f"SELECT data FROM {STEPS} WHERE run_id = ? AND status = 'resumed' "
                    f"AND path IN ({marks})",
                    [run.run_id, *parked],
                ).fetchall()
                if rows:
                    return [_step_from(r[0]) for r in rows]
            c.execute(_Q_FINISH, params)
            return []

        return await self._do(fn, tx=bool(parked or step_args))

    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        def fn(c: sqlite3.Connection) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
            row = c.execute(_Q_GET, (run_id,)).fetchone()
            if row is None:
                return None
            return _run_from_row(row), [_step_from(r[0]) for r in c.execute(_Q_STEPS, (run_id,))]

        return await self._do(fn, tx=True)

    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        row = await self._do(lambda c: c.execute(_Q_GET, (run_id,)).fetchone())
        return None if row is None else _run_from_row(row)

    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = 30.0,
        event: str | None = None,
    ) -> ResumeOutcome:
        def fn(c: sqlite3.Connection) -> ResumeOutcome:
            row = c.execute(_Q_GET, (run_id,)).fetchone()
            if row is None:
                raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
            run = _run_from_row(row)
            steps = [_step_from(r[0]) for r in c.execute(_Q_STEPS, (run_id,))]
            target = mark_resumed(run, steps, path, event, data)
            c.execute(_Q_STEP, _step_args(run_id, target))
            claimed = claim_parked(run, owner, lease)
            if claimed:
                c.execute(
                    f"UPDATE {RUNS} SET status = 'running', owner = ?, lease_expires_at = ?, "
                    "updated_at = ? WHERE run_id = ?",
                    (owner, run.lease_expires_at, run.updated_at, run_id),
                )
            return ResumeOutcome(claimed, run, steps)

        return await self._do(fn, tx=True)

    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = 30.0
    ) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)

        def fn(c: sqlite3.Connection) -> set[str]:
            c.execute(
                f"UPDATE {RUNS} SET lease_expires_at = ? WHERE owner = ? AND status = 'running' "
                f"AND run_id IN ({marks})",
                [time.time() + lease, owner, *ids],
            )
            rows = c.execute(
                f"SELECT run_id FROM {RUNS} WHERE cancel_requested = 1 AND run_id IN ({marks})",
                ids,
            ).fetchall()
            return {r[0] for r in rows}

        return await self._do(fn, tx=True)

    async def claim_expired(
        self,
        owner: str,
        *,
        workflows: Collection[str] | None = None,
        lease: float = 30.0,
        limit: int = 100,
    ) -> list[WorkflowRunRecord]:
        wf = list(workflows) if workflows is not None else None
        if wf is not None and not wf:
            return []

        def fn(c: sqlite3.Connection) -> list[WorkflowRunRecord]:
            now = time.time()
            sql = (
                f"SELECT {_R_COLS} FROM {RUNS} WHERE status = 'running' "
                "AND lease_expires_at IS NOT NULL AND lease_expires_at < ?"
            )
            args: list[Any] = [now]
            if wf is not None:
                sql += f" AND workflow IN ({', '.join('?' for _ in wf)})"
                args += wf
            sql += " ORDER BY created_at LIMIT ?"
            args.append(limit)
            runs = [_run_from_row(r) for r in c.execute(sql, args).fetchall()]
            for r in runs:
                r.owner, r.lease_expires_at = owner, now + lease
                c.execute(
                    f"UPDATE {RUNS} SET owner = ?, lease_expires_at = ? WHERE run_id = ?",
                    (owner, r.lease_expires_at, r.run_id),
                )
            return runs

        return await self._do(fn, tx=True)

    async def request_cancel(self, run_id: str) -> str | None:
        def fn(c: sqlite3.Connection) -> str | None:
            row = c.execute(f"SELECT status FROM {RUNS} WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            status = str(row[0])
            if status in WORKFLOW_PARKED:
                c.execute(
                    f"UPDATE {RUNS} SET status = 'cancelled', error = ?, suspended = '[]', "
                    "updated_at = ? WHERE run_id = ?",
                    (wf_dumps(CANCELLED_BY_REQUEST), time.time(), run_id),
                )
                return "cancelled"
            if status == "running":
                c.execute(f"UPDATE {RUNS} SET cancel_requested = 1 WHERE run_id = ?", (run_id,))
            return status

        return await self._do(fn, tx=True)

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[WorkflowRunRecord]:
        where, args = _filters(workflow, statuses, user_id, pg=False)
        sql = (
            f"SELECT {_R_COLS} FROM {RUNS}{where} ORDER BY created_at DESC, run_id DESC "
            "LIMIT ? OFFSET ?"
        )
        rows = await self._do(lambda c: c.execute(sql, [*args, limit, offset]).fetchall())
        return [_run_from_row(r) for r in rows]

    async def delete_run(self, run_id: str) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            c.execute(f"DELETE FROM {STEPS} WHERE run_id = ?", (run_id,))
            return bool(c.execute(f"DELETE FROM {RUNS} WHERE run_id = ?", (run_id,)).rowcount)

        return await self._do(fn, tx=True)

    async def prune(self, before: float) -> int:
        final = list(WORKFLOW_FINAL)
        marks = ", ".join("?" for _ in final)

        def fn(c: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in c.execute(
                    f"SELECT run_id FROM {RUNS} WHERE updated_at < ? AND status IN ({marks})",
                    [before, *final],
                ).fetchall()
            ]
            for run_id in ids:
                c.execute(f"DELETE FROM {STEPS} WHERE run_id = ?", (run_id,))
                c.execute(f"DELETE FROM {RUNS} WHERE run_id = ?", (run_id,))
            return len(ids)

        return await self._do(fn, tx=True)


# -- PostgreSQL ------------------------------------------------------------------------------

_P_STEP = (
    f"INSERT INTO {STEPS} (run_id, path, status, seq, data) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, seq = excluded.seq, "
    "data = excluded.data"
)
_P_CREATE = (
    f"INSERT INTO {RUNS} ({_R_COLS}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(_RUN_COLS)))}) "
    "ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
)
_P_GET = f"SELECT {_R_COLS} FROM {RUNS} WHERE run_id = $1"
_P_STEPS = f"SELECT data FROM {STEPS} WHERE run_id = $1 ORDER BY seq"
_P_FINISH = (
    f"UPDATE {RUNS} SET status = $2::text, output = $3, error = $4, state = $5, state_seq = $6, "
    "seq = $7, suspended = $8, lease_expires_at = $9, updated_at = $10, "
    "cancel_requested = CASE WHEN $2::text = 'running' THEN cancel_requested ELSE 0 END "
    "WHERE run_id = $1 AND (owner IS NULL OR $11::text IS NULL OR owner = $11)"
)


class PgWorkflows(WorkflowStore):
    """The workflow domain on PostgreSQL (see the module docstring)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def _run(self, fn: Callable[[Any], Any], *, tx: bool = False) -> Any:
        async with self.engine.driver() as conn:
            if tx:
                async with conn.transaction():
                    return await fn(conn)
            return await fn(conn)

    async def create_run(self, run: WorkflowRunRecord, *, lease: float = 30.0) -> bool:
        now = time.time()
        run.lease_expires_at = None if run.engine == "dbos" else now + lease
        run.updated_at = now
        p = _run_params(run)
        args = [p[c] for c in _RUN_COLS]
        return await self._run(lambda c: c.fetchrow(_P_CREATE, *args)) is not None

    async def save_step(self, run_id: str, step: StepRecord) -> None:
        args = _step_args(run_id, step)
        await self._run(lambda c: c.execute(_P_STEP, *args))

    async def finish_run(
        self, run: WorkflowRunRecord, *, owner: str | None, steps: Sequence[StepRecord] = ()
    ) -> list[StepRecord]:
        run.updated_at = time.time()
        if run.status != "running":
            run.lease_expires_at = None
        p = _run_params(run)
        parked = [x["path"] for x in run.suspended] if run.status in WORKFLOW_PARKED else []
        step_args = [_step_args(run.run_id, s) for s in steps]
        args = (
            run.run_id, p["status"], p["output"], p["error"], p["state"], p["state_seq"],
            p["seq"], p["suspended"], p["lease_expires_at"], p["updated_at"], owner,
        )  # fmt: skip

        async def fn(c: Any) -> list[StepRecord]:
            if step_args:
                await c.executemany(_P_STEP, step_args)
            if parked:
                await c.execute(f"SELECT 1 FROM {RUNS} WHERE run_id = $1 FOR UPDATE", run.run_id)
                rows = await c.fetch(
                    f"SELECT data FROM {STEPS} WHERE run_id = $1 AND status = 'resumed' "
                    "AND path = ANY($2::text[])",
                    run.run_id,
                    parked,
                )
                if rows:
                    return [_step_from(r[0]) for r in rows]
            await c.execute(_P_FINISH, *args)
            return []

        out: list[StepRecord] = await self._run(fn, tx=bool(parked or step_args))
        return out

    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        async def fn(c: Any) -> Any:
            row = await c.fetchrow(_P_GET, run_id)
            if row is None:
                return None
            rows = await c.fetch(_P_STEPS, run_id)
            return _run_from_row(tuple(row)), [_step_from(r[0]) for r in rows]

        return await self._run(fn, tx=True)

    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        row = await self._run(lambda c: c.fetchrow(_P_GET, run_id))
        return None if row is None else _run_from_row(tuple(row))

    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = 30.0,
        event: str | None = None,
    ) -> ResumeOutcome:
        async def fn(c: Any) -> ResumeOutcome:
            row = await c.fetchrow(_P_GET + " FOR UPDATE", run_id)
            if row is None:
                raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
            run = _run_from_row(tuple(row))
            steps = [_step_from(r[0]) for r in await c.fetch(_P_STEPS, run_id)]
            target = mark_resumed(run, steps, path, event, data)
            await c.execute(_P_STEP, *_step_args(run_id, target))
            claimed = claim_parked(run, owner, lease)
            if claimed:
                await c.execute(
                    f"UPDATE {RUNS} SET status = 'running', owner = $2, lease_expires_at = $3, "
                    "updated_at = $4 WHERE run_id = $1",
                    run_id, owner, run.lease_expires_at, run.updated_at,
                )  # fmt: skip
            return ResumeOutcome(claimed, run, steps)

        return await self._run(fn, tx=True)

    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = 30.0
    ) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()
        rows = await self._run(
            lambda c: c.fetch(
                f"UPDATE {RUNS} SET lease_expires_at = CASE WHEN owner = $2 AND status = 'running' "
                "THEN $3 ELSE lease_expires_at END WHERE run_id = ANY($1::text[]) "
                "RETURNING run_id, cancel_requested",
                ids,
                owner,
                time.time() + lease,
            )
        )
        return {r[0] for r in rows if r[1]}

    async def claim_expired(
        self,
        owner: str,
        *,
        workflows: Collection[str] | None = None,
        lease: float = 30.0,
        limit: int = 100,
    ) -> list[WorkflowRunRecord]:
        now = time.time()
        wf = list(workflows) if workflows is not None else None
        if wf is not None and not wf:
            return []
        cond = "AND workflow = ANY($4::text[])" if wf is not None else ""
        sql = (
            f"UPDATE {RUNS} SET owner = $1, lease_expires_at = $2 WHERE run_id IN ("
            f"SELECT run_id FROM {RUNS} WHERE status = 'running' AND lease_expires_at < $3 "
            f"{cond} ORDER BY created_at LIMIT {int(limit)} FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_R_COLS}"
        )
        args: list[Any] = [owner, now + lease, now]
        if wf is not None:
            args.append(wf)
        rows = await self._run(lambda c: c.fetch(sql, *args))
        return [_run_from_row(tuple(r)) for r in rows]

    async def request_cancel(self, run_id: str) -> str | None:
        async def fn(c: Any) -> str | None:
            row = await c.fetchrow(
                f"SELECT status FROM {RUNS} WHERE run_id = $1 FOR UPDATE", run_id
            )
            if row is None:
                return None
            status = str(row[0])
            if status in WORKFLOW_PARKED:
                await c.execute(
                    f"UPDATE {RUNS} SET status = 'cancelled', error = $2, suspended = '[]', "
                    "updated_at = $3 WHERE run_id = $1",
                    run_id, wf_dumps(CANCELLED_BY_REQUEST), time.time(),
                )  # fmt: skip
                return "cancelled"
            if status == "running":
                await c.execute(f"UPDATE {RUNS} SET cancel_requested = 1 WHERE run_id = $1", run_id)
            return status

        return await self._run(fn, tx=True)

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Collection[str] | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[WorkflowRunRecord]:
        where, args = _filters(workflow, statuses, user_id, pg=True)
        n = len(args)
        sql = (
            f"SELECT {_R_COLS} FROM {RUNS}{where} ORDER BY created_at DESC, run_id DESC "
            f"LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        rows = await self._run(lambda c: c.fetch(sql, *args, limit, offset))
        return [_run_from_row(tuple(r)) for r in rows]

    async def delete_run(self, run_id: str) -> bool:
        async def fn(c: Any) -> bool:
            await c.execute(f"DELETE FROM {STEPS} WHERE run_id = $1", run_id)
            status = await c.execute(f"DELETE FROM {RUNS} WHERE run_id = $1", run_id)
            return bool(status != "DELETE 0")

        return await self._run(fn, tx=True)

    async def prune(self, before: float) -> int:
        async def fn(c: Any) -> int:
            rows = await c.fetch(
                f"DELETE FROM {RUNS} WHERE updated_at < $1 AND status = ANY($2::text[]) "
                "RETURNING run_id",
                before,
                list(WORKFLOW_FINAL),
            )
            ids = [r[0] for r in rows]
            if ids:
                await c.execute(f"DELETE FROM {STEPS} WHERE run_id = ANY($1::text[])", ids)
            return len(ids)

        return await self._run(fn, tx=True)
