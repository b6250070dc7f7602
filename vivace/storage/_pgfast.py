"""PostgreSQL's run-loop seam in one round trip per call, straight on asyncpg.

Each call of the seam is a single SQL statement run in autocommit (a statement is its own
transaction, so it is atomic and sees one snapshot), sent on the pooled asyncpg connection
with asyncpg's prepared-statement cache (after the first use on a connection: one Bind/Execute
round trip, no ``BEGIN``/``COMMIT``):

- ``begin_run`` / ``start_run``: data-modifying CTEs - the session upsert (``ON CONFLICT``,
  updating only when the owner matches), the run upsert selected *from* that upsert (so a
  session of another user writes nothing), and the windowed history read in the same
  snapshot (so it never sees the run being inserted).
- ``finish_run`` without state changes: the session touch (owner-checked, returning the state)
  and the run upsert selected from it.
- ``finish_run`` with state changes: the same statement with a compare-and-swap on the
  session state - ``SET state = :merged WHERE state = :baseline``. The merge happens in
  Python on the state ``begin_run`` returned (same JSON text, key order, size limit and
  errors as everywhere else); a concurrent change of the state makes the compare fail (the
  ``WHERE`` is re-checked on the latest row version under the row lock), and the call falls
  back to the locking transaction (``SELECT ... FOR UPDATE``, re-read, merge, write).

When the run id already belongs to another session the statement divides by zero on
purpose (SQLSTATE 22012): the error aborts the whole statement, so nothing is written, and it
surfaces as :class:`~vivace.storage.RunStateError`. Anything unusual (a new session in
``finish_run``, another user's session, a changed state) takes the general transactional path
in :class:`~vivace.storage.sql._SQLSessions`, which owns the error messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.util import greenlet_spawn

from . import _logic as L
from . import schema as S
from .errors import RunStateError, SessionOwnershipError, StateTooLargeError
from .records import HistoryWindow, RunRecord, SessionContext, SessionRecord
from .sql import _SQLSessions

if TYPE_CHECKING:
    from .sql import PostgresStorage

__all__ = ["PgSessions"]

BASELINE_MAX_CHARS = 64 * 1024
"""States longer than this are not remembered between ``begin_run`` and ``finish_run``
(their state changes take the locking path)."""
BASELINE_MAX_RUNS = 1024
"""At most this many in-flight runs remember their baseline state (oldest dropped first)."""

_DIVISION_BY_ZERO = "22012"


def _q(name: str) -> str:
    return f'"{name}"'


def _pg_type(col: sa.Column[Any]) -> str:
    """The cast for a bound parameter of ``col`` (no length: an over-long value still
    fails on assignment instead of being truncated by the cast)."""
    t = col.type
    if isinstance(t, sa.Float):
        return "DOUBLE PRECISION"
    if isinstance(t, sa.Integer):
        return "BIGINT"
    if isinstance(t, sa.String) and t.length is not None:
        return "VARCHAR"
    return "TEXT"


class _Sql:
    """One statement's text with its named parameters numbered ``$1``, ``$2``... in order."""

    __slots__ = ("names", "text")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.text = ""

    def p(self, name: str, sql_type: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"${self.names.index(name) + 1}::{sql_type}"

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[n] for n in self.names)


_S, _R = S.sessions, S.runs
_ST, _RT = _q(_S.name), _q(_R.name)
_RUN_COLS = [c for c in _R.columns if c.name != "seq"]
_RUN_SET_COLS = (
    "agent_id", "user_id", "status", "input", "messages", "output", "usage", "error",
    "paused", "metadata", "updated_at", "lease_expires_at",
)  # fmt: skip
_SESSION_COLS = [c.name for c in _S.columns]


def _col_type(table: sa.Table, name: str) -> str:
    return _pg_type(table.c[name])


def _run_upsert(sql: _Sql, source: str) -> str:
    """``INSERT INTO runs ... SELECT ... FROM source`` (one row per row of ``source``), the
    update on conflict limited to the run's own session."""
    cols = ", ".join(_q(c.name) for c in _RUN_COLS)
    sel = ", ".join(sql.p(c.name, _pg_type(c)) for c in _RUN_COLS)
    set_ = ", ".join(f"{_q(n)} = EXCLUDED.{_q(n)}" for n in _RUN_SET_COLS)
    return (
        f"INSERT INTO {_RT} AS t ({cols}) SELECT {sel} FROM {source} "
        f"ON CONFLICT (run_id) DO UPDATE SET {set_} "
        "WHERE t.session_id = EXCLUDED.session_id RETURNING 1"
    )


def _history(sql: _Sql) -> str:
    """The last ``h_limit`` runs of the session whose *effective* status is wanted (a running
    run past its lease counts as incomplete), newest first."""
    sid = sql.p("session_id", _col_type(_R, "session_id"))
    now = sql.p("now", "DOUBLE PRECISION")
    return (
        f"SELECT seq, messages, run_id FROM {_RT} WHERE session_id = {sid} AND ("
        f"status = ANY({sql.p('h_plain', 'VARCHAR[]')}) "
        f"OR ({sql.p('h_incomplete', 'BOOLEAN')} AND (status = 'incomplete' "
        f"OR (status = 'running' AND lease_expires_at < {now}))) "
        f"OR ({sql.p('h_running', 'BOOLEAN')} AND status = 'running' "
        f"AND (lease_expires_at IS NULL OR lease_expires_at >= {now}))"
        f") ORDER BY seq DESC LIMIT {sql.p('h_limit', 'BIGINT')}"
    )


_HISTORY_COLS = (
    "ARRAY(SELECT messages FROM h ORDER BY seq DESC) AS h_messages, "
    "ARRAY(SELECT run_id FROM h ORDER BY seq DESC) AS h_ids"
)


def _begin_sql() -> _Sql:
    sql = _Sql()
    new = {
        "session_id": sql.p("session_id", _col_type(_S, "session_id")),
        "agent_id": sql.p("agent_id", _col_type(_S, "agent_id")),
        "user_id": sql.p("user_id", _col_type(_S, "user_id")),
        "name": "NULL",
        "state": "'{}'",
        "metadata": "'{}'",
        "created_at": sql.p("now", "DOUBLE PRECISION"),
        "updated_at": sql.p("now", "DOUBLE PRECISION"),
    }
    returning = ", ".join(f"t.{_q(c)}" for c in _SESSION_COLS)
    session_upsert = (
        f"INSERT INTO {_ST} AS t ({', '.join(_q(c) for c in new)}) "
        f"VALUES ({', '.join(new.values())}) "
        "ON CONFLICT (session_id) DO UPDATE SET updated_at = EXCLUDED.updated_at "
        "WHERE t.user_id IS NOT DISTINCT FROM EXCLUDED.user_id "
        f"RETURNING {returning}"
    )
    sql.text = (
        f"WITH s AS ({session_upsert}), r AS ({_run_upsert(sql, 's')}), h AS ({_history(sql)}) "
        f"SELECT s.*, 1 / (SELECT count(*) FROM r) AS written, {_HISTORY_COLS} FROM s"
    )
    return sql


def _finish_sql(swap_state: bool) -> _Sql:
    sql = _Sql()
    sets = [f"updated_at = {sql.p('now', 'DOUBLE PRECISION')}"]
    conds = [
        f"session_id = {sql.p('session_id', _col_type(_S, 'session_id'))}",
        f"user_id IS NOT DISTINCT FROM {sql.p('user_id', _col_type(_S, 'user_id'))}",
    ]
    if swap_state:
        sets.append(f"state = {sql.p('new_state', 'TEXT')}")
        conds.append(f"state = {sql.p('old_state', 'TEXT')}")
    session_update = (
        f"UPDATE {_ST} SET {', '.join(sets)} WHERE {' AND '.join(conds)} RETURNING state"
    )
    sql.text = (
        f"WITH s AS ({session_update}), r AS ({_run_upsert(sql, 's')}) "
        "SELECT s.state, 1 / (SELECT count(*) FROM r) AS written FROM s"
    )
    return sql


def _load_sql() -> _Sql:
    sql = _Sql()
    cols = ", ".join(f"t.{_q(c)}" for c in _SESSION_COLS)
    sid = sql.p("session_id", _col_type(_S, "session_id"))
    sql.text = (
        f"WITH h AS ({_history(sql)}) SELECT {cols}, {_HISTORY_COLS} "
        f"FROM {_ST} AS t WHERE t.session_id = {sid}"
    )
    return sql


def _heartbeat_sql() -> _Sql:
    sql = _Sql()
    sql.text = (
        f"UPDATE {_RT} SET lease_expires_at = {sql.p('lease_expires_at', 'DOUBLE PRECISION')} "
        f"WHERE run_id = {sql.p('run_id', _col_type(_R, 'run_id'))} AND status = 'running'"
    )
    return sql


BEGIN = _begin_sql()
FINISH = _finish_sql(swap_state=False)
FINISH_SWAP = _finish_sql(swap_state=True)
LOAD = _load_sql()
HEARTBEAT = _heartbeat_sql()


def _history_params(window: HistoryWindow | None) -> dict[str, Any]:
    if window is None:
        return {"h_plain": [], "h_incomplete": False, "h_running": False, "h_limit": 0}
    statuses = window.statuses
    return {
        "h_plain": [s for s in statuses if s not in ("running", "incomplete")],
        "h_incomplete": "incomplete" in statuses,
        "h_running": "running" in statuses,
        "h_limit": window.run_limit(),
    }


def _history_rows(row: Any) -> list[tuple[str, str]]:
    return list(zip(row["h_messages"], row["h_ids"], strict=True))


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        session_id=row["session_id"],
        agent_id=row["agent_id"],
        user_id=row["user_id"],
        name=row["name"],
        state=json.loads(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata=json.loads(row["metadata"]),
    )


class PgSessions(_SQLSessions):
    """Sessions and runs on PostgreSQL: the seam in single statements (see the module)."""

    _o: PostgresStorage

    def __init__(self, owner: PostgresStorage) -> None:
        super().__init__(owner)
        # run_id -> (session_id, state JSON as begin_run read it): the compare-and-swap baseline
        self._baselines: dict[str, tuple[str, str]] = {}

    # -- the driver ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection, outside any transaction (each statement autocommits)."""
        import asyncpg

        owner = self._o
        await owner._ready()
        try:
            raw = await owner._get_engine().raw_connection()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise owner._translate(exc) from exc
        conn = raw.driver_connection
        healthy = True
        try:
            yield conn
        except asyncpg.PostgresError as exc:  # reported by the server: the connection is fine
            raise owner._translate(exc) from exc
        except (asyncpg.InterfaceError, OSError) as exc:
            healthy = False
            raise owner._translate(exc) from exc
        except BaseException as exc:
            # cancelled or failed mid-statement: do not hand the connection to someone else
            # (a domain error raised after a completed statement leaves it usable)
            healthy = isinstance(exc, Exception) and not conn.is_closed()
            raise
        finally:
            if not healthy or conn.is_closed():
                if not conn.is_closed():
                    conn.terminate()
                await greenlet_spawn(raw.invalidate)
            await greenlet_spawn(raw.close)

    async def _fetchrow(self, sql: _Sql, values: Mapping[str, Any]) -> Any:
        import asyncpg

        args = sql.args(values)
        async with self._driver() as conn:
            try:
                return await conn.fetchrow(sql.text, *args)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate == _DIVISION_BY_ZERO:
                    run_id = values["run_id"]
                    raise RunStateError(
                        f"run {run_id!r} belongs to another session", run_id=run_id
                    ) from None
                raise

    def _remember(self, run_id: str, session_id: str, state: str) -> None:
        if len(state) > BASELINE_MAX_CHARS:
            return
        baselines = self._baselines
        baselines.pop(run_id, None)
        if len(baselines) >= BASELINE_MAX_RUNS:
            del baselines[next(iter(baselines))]
        baselines[run_id] = (session_id, state)

    # -- seam -----------------------------------------------------------------------------------

    async def load_context(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        history: HistoryWindow | None = None,
    ) -> SessionContext:
        values = _history_params(history)
        values.update(session_id=session_id, now=time.time())
        row = await self._fetchrow(LOAD, values)
        if row is None:
            return SessionContext.build(None, [])
        L.check_owner(session_id, row["user_id"], user_id)
        msgs, ids = self._window(_history_rows(row), history)
        return SessionContext.build(_session(row), msgs, ids)

    async def _begin(
        self, record: RunRecord, history: HistoryWindow | None, lease: float
    ) -> tuple[Any, float]:
        values = L.run_row(record)
        now = time.time()
        values.update(_history_params(history))
        values.update(status="running", lease_expires_at=now + lease, updated_at=now, now=now)
        row = await self._fetchrow(BEGIN, values)
        if row is None:
            raise SessionOwnershipError(
                f"session {record.session_id!r} belongs to another user",
                session_id=record.session_id,
            )
        record.status = "running"
        record.lease_expires_at = now + lease
        self._remember(record.run_id, record.session_id, row["state"])
        return row, now

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float = L.DEFAULT_LEASE,
    ) -> SessionContext:
        row, _ = await self._begin(record, history, lease)
        msgs, ids = self._window(_history_rows(row), history)
        return SessionContext.build(_session(row), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float = L.DEFAULT_LEASE) -> None:
        await self._begin(record, None, lease)

    async def heartbeat(self, run_id: str, *, lease: float = L.DEFAULT_LEASE) -> bool:
        values = {"run_id": run_id, "lease_expires_at": time.time() + lease}
        async with self._driver() as conn:
            status = await conn.execute(HEARTBEAT.text, *HEARTBEAT.args(values))
        return status != "UPDATE 0"

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        values = L.run_row(record)  # raises before anything is written
        if state_changes:
            L.dumps(dict(state_changes), "session state")
        baseline = self._baselines.pop(record.run_id, None)
        now = time.time()
        values.update(lease_expires_at=None, updated_at=now, now=now)
        if not (state_changes or state_deletes):
            row = await self._fetchrow(FINISH, values)
            state = json.loads(row["state"]) if row is not None else None
        else:
            state = await self._swap_state(record, values, baseline, state_changes, state_deletes)
        if state is None:  # new session, another user's, or a concurrent state change
            return await super().finish_run(
                record, state_changes=state_changes, state_deletes=state_deletes
            )
        record.lease_expires_at = None
        record.updated_at = now
        return state

    async def _swap_state(
        self,
        record: RunRecord,
        values: dict[str, Any],
        baseline: tuple[str, str] | None,
        changes: Mapping[str, Any] | None,
        deletes: Collection[str],
    ) -> dict[str, Any] | None:
        """Write the run and the merged state if the state is still ``baseline``; None when
        it is not (or there is no baseline): the caller then takes the locking path."""
        if baseline is None or baseline[0] != record.session_id:
            return None
        try:
            state, text = L.merge_state(
                json.loads(baseline[1]), changes, deletes, self._o.max_state_bytes,
                record.session_id,
            )  # fmt: skip
        except StateTooLargeError:
            return None  # the current state may differ: decide on it, under the lock
        values.update(old_state=baseline[1], new_state=text)
        row = await self._fetchrow(FINISH_SWAP, values)
        return state if row is not None else None
