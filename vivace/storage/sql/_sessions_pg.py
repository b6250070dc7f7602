"""PostgreSQL's run-loop seam in one round trip per call, straight on asyncpg.

Each call of the seam is a single SQL statement run in autocommit on
:meth:`~vivace.storage.sql._engine.PostgresEngine.driver` (a statement is its own
transaction, so it is atomic and sees one snapshot), with asyncpg's prepared-statement cache
(after the first use on a connection: one Bind/Execute round trip, no ``BEGIN``/``COMMIT``):

- ``begin_run`` / ``start_run``: data-modifying CTEs - the session upsert (``ON CONFLICT``,
  updating only when the owner matches), the run upsert selected *from* that upsert (so a
  session of another user writes nothing), and the windowed history read in the same
  snapshot (so it never sees the run being inserted).
- ``finish_run`` without state changes: the session read (owner-checked, locked ``FOR NO KEY
  UPDATE`` as an update would lock it, not written) and the run upsert selected from it.
- ``finish_run`` with state changes: the same statement with a compare-and-swap on the
  session state - ``SET state = :merged WHERE state = :baseline``. The merge (conflict checks,
  atomic updates, size limit) happens in Python on the state ``begin_run`` returned; a
  concurrent change of the state makes the compare fail (the ``WHERE`` is re-checked on the
  latest row version under the row lock), and the call falls back to the locking
  transaction (``SELECT ... FOR UPDATE``, re-read, merge - where a conflict is decided on
  the current state - write).

When the run id already belongs to another session the statement divides by zero on
purpose (SQLSTATE 22012): the error aborts the whole statement, so nothing is written, and it
surfaces as :class:`~vivace.storage.RunStateError`. Anything unusual (a new session in
``finish_run``, another user's session, a changed state) takes the general transactional path
of :class:`~vivace.storage.sql.sessions.SQLSessions`, which owns the error messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from typing import Any

from .. import _logic as L
from ..errors import RunStateError, SessionOwnershipError, StateConflict, StateTooLargeError
from ..ownership import check_session_owner
from ..records import HistoryWindow, RunRecord, SessionContext
from ..state import SessionState, StateDelta
from ._engine import PostgresEngine, Statement, pg_type
from .sessions import RUN_COLS, RUN_SET_COLS, SESSION_COLS, SQLSessions, runs, sessions

__all__ = ["PgSessions"]

BASELINE_MAX_CHARS = 64 * 1024
"""States longer than this are not remembered between ``begin_run`` and ``finish_run``
(their state changes take the locking path)."""
BASELINE_MAX_RUNS = 1024
"""At most this many in-flight runs remember their baseline state (oldest dropped first)."""

_DIVISION_BY_ZERO = "22012"


def _q(name: str) -> str:
    return f'"{name}"'


_ST, _RT = _q(sessions.name), _q(runs.name)


def _col_type(table: Any, name: str) -> str:
    return pg_type(table.c[name])


def _run_upsert(sql: Statement, source: str) -> str:
    """``INSERT INTO runs ... SELECT ... FROM source`` (one row per row of ``source``), the
    update on conflict limited to the run's own session."""
    cols = ", ".join(_q(c) for c in RUN_COLS)
    sel = ", ".join(sql.p(c, pg_type(runs.c[c])) for c in RUN_COLS)
    set_ = ", ".join(f"{_q(n)} = EXCLUDED.{_q(n)}" for n in RUN_SET_COLS)
    return (
        f"INSERT INTO {_RT} AS t ({cols}) SELECT {sel} FROM {source} "
        f"ON CONFLICT (run_id) DO UPDATE SET {set_} "
        "WHERE t.session_id = EXCLUDED.session_id RETURNING 1"
    )


def _history(sql: Statement) -> str:
    """The last ``h_limit`` runs of the session whose *effective* status is wanted (a running
    run past its lease counts as incomplete), newest first."""
    sid = sql.p("session_id", _col_type(runs, "session_id"))
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


def _begin_sql() -> Statement:
    sql = Statement()
    new = {
        "session_id": sql.p("session_id", _col_type(sessions, "session_id")),
        "agent_id": sql.p("agent_id", _col_type(sessions, "agent_id")),
        "user_id": sql.p("user_id", _col_type(sessions, "user_id")),
        "name": "NULL",
        "state": "'{}'",
        "metadata": "'{}'",
        "created_at": sql.p("now", "DOUBLE PRECISION"),
        "updated_at": sql.p("now", "DOUBLE PRECISION"),
    }
    returning = ", ".join(f"t.{_q(c)}" for c in SESSION_COLS)
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


def _finish_sql(swap_state: bool) -> Statement:
    """A run's end: the run row, and the session's state if it changed (compare-and-swap on
    the state ``begin_run`` read). Without a state change the session row is only read and
    locked (``FOR NO KEY UPDATE``: the lock the update took before, so it queues with the
    other writers of the row as it did - a ``FOR KEY SHARE`` there can deadlock with the
    locking path's ``FOR UPDATE``), not written: a session's ``updated_at`` is when its last
    run started (or its state last changed)."""
    sql = Statement()
    conds = [
        f"session_id = {sql.p('session_id', _col_type(sessions, 'session_id'))}",
        f"user_id IS NOT DISTINCT FROM {sql.p('user_id', _col_type(sessions, 'user_id'))}",
    ]
    if swap_state:
        sets = [
            f"updated_at = {sql.p('now', 'DOUBLE PRECISION')}",
            f"state = {sql.p('new_state', 'TEXT')}",
        ]
        conds.append(f"state = {sql.p('old_state', 'TEXT')}")
        session = f"UPDATE {_ST} SET {', '.join(sets)} WHERE {' AND '.join(conds)} RETURNING state"
    else:
        session = f"SELECT state FROM {_ST} WHERE {' AND '.join(conds)} FOR NO KEY UPDATE"
    sql.text = (
        f"WITH s AS ({session}), r AS ({_run_upsert(sql, 's')}) "
        "SELECT s.state, 1 / (SELECT count(*) FROM r) AS written FROM s"
    )
    return sql


def _load_sql() -> Statement:
    sql = Statement()
    cols = ", ".join(f"t.{_q(c)}" for c in SESSION_COLS)
    sid = sql.p("session_id", _col_type(sessions, "session_id"))
    sql.text = (
        f"WITH h AS ({_history(sql)}) SELECT {cols}, {_HISTORY_COLS} "
        f"FROM {_ST} AS t WHERE t.session_id = {sid}"
    )
    return sql


def _heartbeat_sql() -> Statement:
    sql = Statement()
    sql.text = (
        f"UPDATE {_RT} SET lease_expires_at = {sql.p('lease_expires_at', 'DOUBLE PRECISION')} "
        f"WHERE run_id = {sql.p('run_id', _col_type(runs, 'run_id'))} AND status = 'running'"
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


class PgSessions(SQLSessions):
    """Sessions and runs on PostgreSQL: the seam in single statements (see the module)."""

    engine: PostgresEngine

    def __init__(self, engine: PostgresEngine, *, max_state_bytes: int, run_lease: float) -> None:
        super().__init__(engine, max_state_bytes=max_state_bytes, run_lease=run_lease)
        # run_id -> (session_id, state JSON as begin_run read it): the compare-and-swap baseline
        self._baselines: dict[str, tuple[str, str]] = {}

    async def _fetchrow(self, sql: Statement, values: Mapping[str, Any]) -> Any:
        import asyncpg

        args = sql.args(values)
        async with self.engine.driver() as conn:
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
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        L.check_opt_id("agent_id", agent_id)
        values = _history_params(history)
        values.update(session_id=session_id, now=time.time())
        row = await self._fetchrow(LOAD, values)
        if row is None:
            return SessionContext.build(None, [])
        check_session_owner(session_id, row["user_id"], user_id)
        msgs, ids = self.window(_history_rows(row), history)
        return SessionContext.build(L.session_from_row(row), msgs, ids)

    async def _begin(
        self, record: RunRecord, history: HistoryWindow | None, lease: float | None
    ) -> Any:
        values = L.run_row(record)
        now = time.time()
        expires = now + self._lease(lease)
        values.update(_history_params(history))
        values.update(status="running", lease_expires_at=expires, updated_at=now, now=now)
        row = await self._fetchrow(BEGIN, values)
        if row is None:
            raise SessionOwnershipError(
                f"session {record.session_id!r} belongs to another user",
                session_id=record.session_id,
            )
        record.status = "running"
        record.lease_expires_at = expires
        self._remember(record.run_id, record.session_id, row["state"])
        return row

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float | None = None,
    ) -> SessionContext:
        row = await self._begin(record, history, lease)
        msgs, ids = self.window(_history_rows(row), history)
        return SessionContext.build(L.session_from_row(row), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float | None = None) -> None:
        await self._begin(record, None, lease)

    async def heartbeat(self, run_id: str, *, lease: float | None = None) -> bool:
        L.check_id("run_id", run_id)
        values = {"run_id": run_id, "lease_expires_at": time.time() + self._lease(lease)}
        async with self.engine.driver() as conn:
            status = await conn.execute(HEARTBEAT.text, *HEARTBEAT.args(values))
        return bool(status != "UPDATE 0")

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state: SessionState | StateDelta | None = None,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        values = L.run_row(record)  # raises before anything is written
        delta = L.state_delta(state, state_changes, state_deletes)
        baseline = self._baselines.pop(record.run_id, None)
        now = time.time()
        values.update(lease_expires_at=None, updated_at=now, now=now)
        if not delta:
            row = await self._fetchrow(FINISH, values)
            new_state = json.loads(row["state"]) if row is not None else None
        else:
            new_state = await self._swap_state(record, values, baseline, delta)
        if new_state is None:  # new session, another user's, or a concurrent state change
            return await self._finish(record, L.run_row(record), delta)
        record.lease_expires_at = None
        record.updated_at = now
        return new_state

    async def _swap_state(
        self,
        record: RunRecord,
        values: dict[str, Any],
        baseline: tuple[str, str] | None,
        delta: StateDelta,
    ) -> dict[str, Any] | None:
        """Write the run and the merged state if the state is still ``baseline``; None when
        it is not (or there is no baseline): the caller then takes the locking path."""
        if baseline is None or baseline[0] != record.session_id:
            return None
        try:
            state, text = L.merge_state(
                json.loads(baseline[1]), delta, self.max_state_bytes, record.session_id
            )
        except (StateTooLargeError, StateConflict):
            return None  # the current state may differ: decide on it, under the lock
        values.update(old_state=baseline[1], new_state=text)
        row = await self._fetchrow(FINISH_SWAP, values)
        return state if row is not None else None
