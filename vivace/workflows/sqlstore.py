"""The workflow domain on SQLite and PostgreSQL.

Two tables: ``vivace_workflow_runs`` (one row per run) and ``vivace_workflow_steps`` (one row
per executed step, primary key ``(run_id, path)``, the record as JSON text). A step's write
is one single-statement upsert of its own row (its own transaction): its cost does not grow
with the number of steps of the run.

SQLite: the standard library's ``sqlite3`` on the storage's file, WAL mode,
``synchronous=NORMAL``. Statements run inline on the event loop with ``busy_timeout=0``
(they take microseconds); if another process holds the write lock, the statement is retried
in a worker thread that waits up to ``busy_timeout`` - the loop is never blocked waiting for
a lock. Transactions that read then write (claims, parking) use ``BEGIN IMMEDIATE``.

PostgreSQL: asyncpg, one round trip per step write; claims take ``FOR UPDATE`` row locks
(``SKIP LOCKED`` for recovery), so exactly one worker wins each claim.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from ..errors import StorageError
from .store import (
    DEFAULT_LEASE,
    FINAL_STATUSES,
    PARKED_STATUSES,
    InMemoryWorkflowRunStore,
    ResumeOutcome,
    StepRecord,
    WorkflowRunRecord,
    WorkflowRunStore,
    _find_parked,
    _not_parked,
)
from .typecheck import dump_json

__all__ = ["PostgresWorkflowRunStore", "SQLiteWorkflowRunStore", "store_for_storage"]

_T = TypeVar("_T")

RUNS = "vivace_workflow_runs"
STEPS = "vivace_workflow_steps"
_JSON_COLS = ("input", "output", "error", "state", "suspended", "metadata")
_RUN_COLS = (
    "run_id", "workflow", "status", "input", "output", "error", "state", "state_seq", "seq",
    "suspended", "user_id", "parent_run_id", "origin_run_id", "trace_id", "span_id", "owner",
    "lease_expires_at", "cancel_requested", "engine", "metadata", "created_at", "updated_at",
)  # fmt: skip


def _ddl(real: str, steps_suffix: str = "", text_pk: str = "TEXT") -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {RUNS} ("
        f"run_id {text_pk} PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL, "
        "input TEXT, output TEXT, error TEXT, state TEXT, state_seq BIGINT NOT NULL DEFAULT -1, "
        "seq BIGINT NOT NULL DEFAULT 0, suspended TEXT, user_id TEXT, parent_run_id TEXT, "
        "origin_run_id TEXT, trace_id TEXT, span_id TEXT, owner TEXT, "
        f"lease_expires_at {real}, cancel_requested INTEGER NOT NULL DEFAULT 0, engine TEXT, "
        f"metadata TEXT, created_at {real} NOT NULL, updated_at {real} NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_{RUNS}_workflow ON {RUNS} (workflow, created_at)",
        f"CREATE INDEX IF NOT EXISTS ix_{RUNS}_status ON {RUNS} (status, lease_expires_at)",
        f"CREATE INDEX IF NOT EXISTS ix_{RUNS}_user ON {RUNS} (user_id, created_at)",
        f"CREATE TABLE IF NOT EXISTS {STEPS} ("
        f"run_id {text_pk} NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL, "
        "seq BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, path))" + steps_suffix,
    ]


def _run_params(run: WorkflowRunRecord) -> dict[str, Any]:
    d = run.to_dict()
    for c in _JSON_COLS:
        d[c] = dump_json(d[c])
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


def store_for_storage(storage: Any) -> WorkflowRunStore:
    """The workflow-run store that lives in ``storage``'s database."""
    from ..storage import InMemoryStorage, PostgresStorage, SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        if storage.path == ":memory:":
            return InMemoryWorkflowRunStore()
        return SQLiteWorkflowRunStore(storage.path, busy_timeout=storage.busy_timeout)
    if isinstance(storage, PostgresStorage):
        return PostgresWorkflowRunStore(storage.url, schema=storage.schema)
    if isinstance(storage, InMemoryStorage):
        return InMemoryWorkflowRunStore()
    composite = getattr(storage, "route", None)
    if callable(composite):
        return store_for_storage(composite("workflows"))
    raise StorageError(f"no workflow store for {type(storage).__name__}")


# -- SQLite ----------------------------------------------------------------------------------

_R_COLS = ", ".join(_RUN_COLS)
_R_PARAMS = ", ".join(f":{c}" for c in _RUN_COLS)
_SQL_STEP = (
    f"INSERT OR REPLACE INTO {STEPS} (run_id, path, status, seq, data) VALUES (?, ?, ?, ?, ?)"
)
_SQL_CREATE = f"INSERT INTO {RUNS} ({_R_COLS}) VALUES ({_R_PARAMS}) ON CONFLICT (run_id) DO NOTHING"
_SQL_GET = f"SELECT {_R_COLS} FROM {RUNS} WHERE run_id = ?"
_SQL_STEPS = f"SELECT data FROM {STEPS} WHERE run_id = ? ORDER BY seq"
_FINISH_SET = (
    "status = :status, output = :output, error = :error, state = :state, state_seq = :state_seq, "
    "seq = :seq, suspended = :suspended, lease_expires_at = :lease_expires_at, "
    "updated_at = :updated_at, cancel_requested = CASE WHEN :status = 'running' "
    "THEN cancel_requested ELSE 0 END"
)
_SQL_FINISH = (
    f"UPDATE {RUNS} SET {_FINISH_SET} WHERE run_id = :run_id "
    "AND (owner IS NULL OR :owner IS NULL OR owner = :owner)"
)


class SQLiteWorkflowRunStore(WorkflowRunStore):
    """Workflow runs in an SQLite file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self._fast: sqlite3.Connection | None = None
        self._slow: sqlite3.Connection | None = None
        self._slow_lock = threading.Lock()
        self._fast_lock = threading.Lock()
        self._init_lock = threading.Lock()

    def _connect(self, timeout: float) -> sqlite3.Connection:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conns(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        fast = self._fast
        if fast is not None:
            assert self._slow is not None
            return fast, self._slow
        with self._init_lock:
            if self._fast is None:
                slow = self._connect(self.busy_timeout)
                mode = slow.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    slow.execute("PRAGMA journal_mode=WAL")
                slow.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _ddl("REAL", " WITHOUT ROWID"):
                        slow.execute(stmt)
                    slow.execute("COMMIT")
                except BaseException:
                    slow.execute("ROLLBACK")
                    raise
                self._slow = slow
                self._fast = self._connect(0.0)
        assert self._fast is not None and self._slow is not None
        return self._fast, self._slow

    async def _do(self, fn: Callable[[sqlite3.Connection], _T], *, tx: bool = False) -> _T:
        """Run ``fn(conn)`` inline (no lock wait), else in a thread that may wait."""
        try:
            fast, slow = self._conns()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite workflow store: {exc}") from exc
        try:
            with self._fast_lock:
                return _call(fast, fn, tx)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise StorageError(f"SQLite workflow store: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite workflow store: {exc}") from exc

        def in_thread() -> _T:
            with self._slow_lock:
                return _call(slow, fn, tx)

        try:
            return await asyncio.to_thread(in_thread)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite workflow store: {exc}") from exc

    async def close(self) -> None:
        for conn in (self._fast, self._slow):
            if conn is not None:
                conn.close()
        self._fast = self._slow = None

    # -- interface ----------------------------------------------------------------------------

    async def create_run(self, run: WorkflowRunRecord, *, lease: float = DEFAULT_LEASE) -> bool:
        now = time.time()
        run.lease_expires_at = None if run.engine == "dbos" else now + lease
        run.updated_at = now
        params = _run_params(run)
        return await self._do(lambda c: c.execute(_SQL_CREATE, params).rowcount == 1)

    async def save_step(self, run_id: str, step: StepRecord) -> None:
        args = (run_id, step.path, step.status, step.seq, dump_json(step.to_dict()))
        await self._do(lambda c: c.execute(_SQL_STEP, args))

    async def finish_run(
        self,
        run: WorkflowRunRecord,
        *,
        owner: str | None,
        steps: Sequence[StepRecord] = (),
    ) -> list[StepRecord]:
        run.updated_at = time.time()
        if run.status != "running":
            run.lease_expires_at = None
        params = _run_params(run)
        params["owner"] = owner
        step_args = [(run.run_id, s.path, s.status, s.seq, dump_json(s.to_dict())) for s in steps]
        parked = [p["path"] for p in run.suspended] if run.status in PARKED_STATUSES else []

        def fn(c: sqlite3.Connection) -> list[StepRecord]:
            if step_args:
                c.executemany(_SQL_STEP, step_args)
            if parked:
                marks = ", ".join("?" for _ in parked)
                rows = c.execute(
                    f"SELECT data FROM {STEPS} WHERE run_id = ? AND status = 'resumed' "
                    f"AND path IN ({marks})",
                    [run.run_id, *parked],
                ).fetchall()
                if rows:
                    return [_step_from(r[0]) for r in rows]
            c.execute(_SQL_FINISH, params)
            return []

        return await self._do(fn, tx=bool(parked or step_args))

    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        def fn(c: sqlite3.Connection) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
            row = c.execute(_SQL_GET, (run_id,)).fetchone()
            if row is None:
                return None
            steps = [_step_from(r[0]) for r in c.execute(_SQL_STEPS, (run_id,)).fetchall()]
            return _run_from_row(row), steps

        return await self._do(fn, tx=True)

    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        row = await self._do(lambda c: c.execute(_SQL_GET, (run_id,)).fetchone())
        return None if row is None else _run_from_row(row)

    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = DEFAULT_LEASE,
        event: str | None = None,
    ) -> ResumeOutcome:
        from .errors import WorkflowRunNotFound

        def fn(c: sqlite3.Connection) -> ResumeOutcome:
            row = c.execute(_SQL_GET, (run_id,)).fetchone()
            if row is None:
                raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
            run = _run_from_row(row)
            steps = [_step_from(r[0]) for r in c.execute(_SQL_STEPS, (run_id,)).fetchall()]
            target = _find_parked(run, steps, path, event)
            if target is None:
                raise _not_parked(run, path, event)
            target.status = "resumed"
            target.resume = [*(target.resume or []), data]
            c.execute(
                _SQL_STEP,
                (run_id, target.path, target.status, target.seq, dump_json(target.to_dict())),
            )
            claimed = run.status in PARKED_STATUSES
            if claimed:
                now = time.time()
                run.status, run.owner = "running", owner
                run.lease_expires_at = None if run.engine == "dbos" else now + lease
                run.updated_at = now
                c.execute(
                    f"UPDATE {RUNS} SET status = 'running', owner = ?, lease_expires_at = ?, "
                    "updated_at = ? WHERE run_id = ?",
                    (owner, run.lease_expires_at, now, run_id),
                )
            return ResumeOutcome(claimed, run, steps)

        return await self._do(fn, tx=True)

    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = DEFAULT_LEASE
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
        lease: float = DEFAULT_LEASE,
        limit: int = 100,
    ) -> list[WorkflowRunRecord]:
        wf = list(workflows) if workflows is not None else None

        def fn(c: sqlite3.Connection) -> list[WorkflowRunRecord]:
            now = time.time()
            sql = (
                f"SELECT {_R_COLS} FROM {RUNS} WHERE status = 'running' "
                "AND lease_expires_at IS NOT NULL AND lease_expires_at < ?"
            )
            args: list[Any] = [now]
            if wf is not None:
                if not wf:
                    return []
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
            if status in PARKED_STATUSES:
                err = dump_json(
                    {
                        "type": "WorkflowCancelled",
                        "code": "workflow_cancelled",
                        "message": "cancelled by request",
                    }
                )
                c.execute(
                    f"UPDATE {RUNS} SET status = 'cancelled', error = ?, suspended = '[]', "
                    "updated_at = ? WHERE run_id = ?",
                    (err, time.time(), run_id),
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
        where, args = _filters(workflow, statuses, user_id, "?")
        sql = f"SELECT {_R_COLS} FROM {RUNS}{where} ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?"
        rows = await self._do(lambda c: c.execute(sql, [*args, limit, offset]).fetchall())
        return [_run_from_row(r) for r in rows]

    async def delete_run(self, run_id: str) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            c.execute(f"DELETE FROM {STEPS} WHERE run_id = ?", (run_id,))
            return c.execute(f"DELETE FROM {RUNS} WHERE run_id = ?", (run_id,)).rowcount > 0

        return await self._do(fn, tx=True)

    async def prune(self, before: float) -> int:
        final = list(FINAL_STATUSES)
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


def _call(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T], tx: bool) -> _T:
    if not tx:
        return fn(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


def _filters(
    workflow: str | None, statuses: Collection[str] | None, user_id: str | None, mark: str
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def m() -> str:
        if mark == "?":
            return "?"
        return f"${len(args) + 1}"

    if workflow is not None:
        clauses.append(f"workflow = {m()}")
        args.append(workflow)
    if statuses is not None:
        sts = list(statuses)
        if not sts:
            clauses.append("1 = 0")
        else:
            marks = []
            for s in sts:
                marks.append(m())
                args.append(s)
            clauses.append(f"status IN ({', '.join(marks)})")
    if user_id is not None:
        clauses.append(f"user_id = {m()}")
        args.append(user_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


# -- PostgreSQL ------------------------------------------------------------------------------

_PG_R_PARAMS = ", ".join(f"${i + 1}" for i in range(len(_RUN_COLS)))


class PostgresWorkflowRunStore(WorkflowRunStore):
    """Workflow runs in PostgreSQL (asyncpg; see the module docstring)."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        for prefix in ("postgresql+asyncpg://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql://" + url[len(prefix) :]
        self.url = url
        self.schema = schema
        self._pools: dict[asyncio.AbstractEventLoop, Any] = {}
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def _pool(self) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        async with lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = await self._open()
        return pool

    async def _open(self) -> Any:
        import asyncpg

        settings = {"search_path": f'"{self.schema}",public'} if self.schema else None
        try:
            conn = await asyncpg.connect(self.url)
            try:
                async with conn.transaction():  # one setup at a time, across processes
                    await conn.execute("SELECT pg_advisory_xact_lock(7201220)")
                    if self.schema:
                        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                        await conn.execute(f'SET LOCAL search_path = "{self.schema}"')
                    for stmt in _ddl("DOUBLE PRECISION"):
                        await conn.execute(stmt)
            finally:
                await conn.close()
            return await asyncpg.create_pool(
                self.url, min_size=1, max_size=10, server_settings=settings
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"PostgreSQL workflow store: {exc}") from exc

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()

    async def _run(self, fn: Callable[[Any], Any], *, tx: bool = False) -> Any:
        import asyncpg

        pool = await self._pool()
        try:
            async with pool.acquire() as conn:
                if tx:
                    async with conn.transaction():
                        return await fn(conn)
                return await fn(conn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"PostgreSQL workflow store: {exc}") from exc

    @staticmethod
    def _args(run: WorkflowRunRecord) -> list[Any]:
        p = _run_params(run)
        return [p[c] for c in _RUN_COLS]

    async def create_run(self, run: WorkflowRunRecord, *, lease: float = DEFAULT_LEASE) -> bool:
        now = time.time()
        run.lease_expires_at = None if run.engine == "dbos" else now + lease
        run.updated_at = now
        args = self._args(run)
        sql = (
            f"INSERT INTO {RUNS} ({_R_COLS}) VALUES ({_PG_R_PARAMS}) "
            "ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
        )
        row = await self._run(lambda c: c.fetchrow(sql, *args))
        return row is not None

    _STEP_SQL = (
        f"INSERT INTO {STEPS} (run_id, path, status, seq, data) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, seq = excluded.seq, "
        "data = excluded.data"
    )

    async def save_step(self, run_id: str, step: StepRecord) -> None:
        data = dump_json(step.to_dict())
        await self._run(
            lambda c: c.execute(self._STEP_SQL, run_id, step.path, step.status, step.seq, data)
        )

    async def finish_run(
        self,
        run: WorkflowRunRecord,
        *,
        owner: str | None,
        steps: Sequence[StepRecord] = (),
    ) -> list[StepRecord]:
        run.updated_at = time.time()
        if run.status != "running":
            run.lease_expires_at = None
        p = _run_params(run)
        parked = [x["path"] for x in run.suspended] if run.status in PARKED_STATUSES else []
        step_args = [(run.run_id, s.path, s.status, s.seq, dump_json(s.to_dict())) for s in steps]
        sql = (
            f"UPDATE {RUNS} SET status = $2, output = $3, error = $4, state = $5, "
            "state_seq = $6, seq = $7, suspended = $8, lease_expires_at = $9, updated_at = $10, "
            "cancel_requested = CASE WHEN $2 = 'running' THEN cancel_requested ELSE 0 END "
            "WHERE run_id = $1 AND (owner IS NULL OR owner = $11 OR $11 IS NULL)"
        )
        args = (
            run.run_id, p["status"], p["output"], p["error"], p["state"], p["state_seq"],
            p["seq"], p["suspended"], p["lease_expires_at"], p["updated_at"], owner,
        )  # fmt: skip

        async def fn(c: Any) -> list[StepRecord]:
            if step_args:
                await c.executemany(self._STEP_SQL, step_args)
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
            await c.execute(sql, *args)
            return []

        out: list[StepRecord] = await self._run(fn, tx=bool(parked or step_args))
        return out

    async def load_run(self, run_id: str) -> tuple[WorkflowRunRecord, list[StepRecord]] | None:
        async def fn(c: Any) -> Any:
            row = await c.fetchrow(f"SELECT {_R_COLS} FROM {RUNS} WHERE run_id = $1", run_id)
            if row is None:
                return None
            rows = await c.fetch(f"SELECT data FROM {STEPS} WHERE run_id = $1 ORDER BY seq", run_id)
            return _run_from_row(tuple(row)), [_step_from(r[0]) for r in rows]

        return await self._run(fn, tx=True)

    async def get_run(self, run_id: str) -> WorkflowRunRecord | None:
        row = await self._run(
            lambda c: c.fetchrow(f"SELECT {_R_COLS} FROM {RUNS} WHERE run_id = $1", run_id)
        )
        return None if row is None else _run_from_row(tuple(row))

    async def resume_step(
        self,
        run_id: str,
        path: str,
        data: Any,
        *,
        owner: str,
        lease: float = DEFAULT_LEASE,
        event: str | None = None,
    ) -> ResumeOutcome:
        from .errors import WorkflowRunNotFound

        async def fn(c: Any) -> ResumeOutcome:
            row = await c.fetchrow(
                f"SELECT {_R_COLS} FROM {RUNS} WHERE run_id = $1 FOR UPDATE", run_id
            )
            if row is None:
                raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
            run = _run_from_row(tuple(row))
            rows = await c.fetch(f"SELECT data FROM {STEPS} WHERE run_id = $1 ORDER BY seq", run_id)
            steps = [_step_from(r[0]) for r in rows]
            target = _find_parked(run, steps, path, event)
            if target is None:
                raise _not_parked(run, path, event)
            target.status = "resumed"
            target.resume = [*(target.resume or []), data]
            await c.execute(
                self._STEP_SQL,
                run_id,
                target.path,
                target.status,
                target.seq,
                dump_json(target.to_dict()),
            )
            claimed = run.status in PARKED_STATUSES
            if claimed:
                now = time.time()
                run.status, run.owner = "running", owner
                run.lease_expires_at = None if run.engine == "dbos" else now + lease
                run.updated_at = now
                await c.execute(
                    f"UPDATE {RUNS} SET status = 'running', owner = $2, lease_expires_at = $3, "
                    "updated_at = $4 WHERE run_id = $1",
                    run_id,
                    owner,
                    run.lease_expires_at,
                    now,
                )
            return ResumeOutcome(claimed, run, steps)

        return await self._run(fn, tx=True)

    async def heartbeat(
        self, owner: str, run_ids: Collection[str], *, lease: float = DEFAULT_LEASE
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
        lease: float = DEFAULT_LEASE,
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
            if status in PARKED_STATUSES:
                err = dump_json(
                    {
                        "type": "WorkflowCancelled",
                        "code": "workflow_cancelled",
                        "message": "cancelled by request",
                    }
                )
                await c.execute(
                    f"UPDATE {RUNS} SET status = 'cancelled', error = $2, suspended = '[]', "
                    "updated_at = $3 WHERE run_id = $1",
                    run_id,
                    err,
                    time.time(),
                )
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
        where, args = _filters(workflow, statuses, user_id, "$")
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
                list(FINAL_STATUSES),
            )
            ids = [r[0] for r in rows]
            if ids:
                await c.execute(f"DELETE FROM {STEPS} WHERE run_id = ANY($1::text[])", ids)
            return len(ids)

        return await self._run(fn, tx=True)
