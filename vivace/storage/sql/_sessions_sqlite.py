"""SQLite's run-loop seam on the sqlite3 connection itself.

``begin_run``, ``start_run`` and ``finish_run`` each run as one write transaction
(``BEGIN IMMEDIATE`` ... ``COMMIT``) with plain SQL text on a sqlite3 connection
(:meth:`~vivace.storage.sql._engine.SQLiteEngine.raw_write`: inline on the event loop when
no other process holds the write lock, else in the storage's worker thread) instead of
SQLAlchemy Core execution, whose per-statement overhead (tens of microseconds) was most of
the cost: SQLite itself runs these statements in microseconds. The statements are generated from the table
definitions, so they cannot drift from them. Holding the write lock makes read-then-write
safe: ``finish_run`` merges the run's state changes on the state it reads under that lock.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from typing import Any

from .. import _logic as L
from ..errors import RunStateError, SessionOwnershipError
from ..ownership import check_session_owner
from ..records import HistoryWindow, RunRecord, SessionContext
from ..state import SessionState, StateDelta
from ._engine import SQLiteEngine
from .sessions import (
    RUN_COLS,
    RUN_END_COLS,
    RUN_SET_COLS,
    SESSION_COLS,
    SQLSessions,
    runs,
    sessions,
)

__all__ = ["LiteSessions"]


def _q(name: str) -> str:
    return f'"{name}"'


_ST, _RT = _q(sessions.name), _q(runs.name)
_SESSION_UPSERT = (
    f"INSERT INTO {_ST} (session_id, agent_id, user_id, name, state, metadata, created_at, "
    "updated_at) VALUES (:session_id, :agent_id, :user_id, NULL, '{}', '{}', :now, :now) "
    "ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at "
    f"WHERE {_ST}.user_id IS excluded.user_id "
    f"RETURNING {', '.join(_q(c) for c in SESSION_COLS)}"
)
_SESSION_INSERT = (
    f"INSERT INTO {_ST} (session_id, agent_id, user_id, name, state, metadata, created_at, "
    "updated_at) VALUES (:session_id, :agent_id, :user_id, NULL, '{}', '{}', :now, :now) "
    "ON CONFLICT (session_id) DO NOTHING"
)
_CREATED = SESSION_COLS.index("created_at")
_SESSION_LOCKED = f"SELECT user_id, state FROM {_ST} WHERE session_id = :session_id"
_SESSION_SET_STATE = (
    f"UPDATE {_ST} SET updated_at = :now, state = :new_state WHERE session_id = :session_id"
)
_RUN_UPSERT = (
    f"INSERT INTO {_RT} ({', '.join(_q(c) for c in RUN_COLS)}) "
    f"VALUES ({', '.join(':' + c for c in RUN_COLS)}) "
    f"ON CONFLICT (run_id) DO UPDATE SET "
    f"{', '.join(f'{_q(c)} = excluded.{_q(c)}' for c in RUN_SET_COLS)} "
    f"WHERE {_RT}.session_id = excluded.session_id RETURNING seq"
)
_RUN_END = (
    f"UPDATE {_RT} SET {', '.join(f'{_q(c)} = :{c}' for c in RUN_END_COLS)} "
    "WHERE run_id = :run_id AND session_id = :session_id AND parent_run_id IS :parent_run_id"
)


@lru_cache(maxsize=32)
def _history_sql(n_plain: int) -> str:
    """The last ``:h_limit`` runs whose effective status is wanted, newest first (``n_plain``
    plain statuses ``:p0``...; a running run past its lease counts as incomplete)."""
    plain = ", ".join(f":p{i}" for i in range(n_plain)) or "NULL"
    return (
        f"SELECT messages, run_id FROM {_RT} WHERE session_id = :session_id AND ("
        f"status IN ({plain}) "
        "OR (:h_incomplete AND (status = 'incomplete' "
        "OR (status = 'running' AND lease_expires_at < :now))) "
        "OR (:h_running AND status = 'running' "
        "AND (lease_expires_at IS NULL OR lease_expires_at >= :now))"
        ") ORDER BY seq DESC LIMIT :h_limit"
    )


def _history_rows(db: sqlite3.Connection, session_id: str, window: HistoryWindow | None) -> Any:
    if window is None:
        return []
    statuses = window.statuses
    plain = [s for s in statuses if s not in ("running", "incomplete")]
    limit = window.run_limit()
    params: dict[str, Any] = {
        "session_id": session_id,
        "h_incomplete": "incomplete" in statuses,
        "h_running": "running" in statuses,
        "h_limit": -1 if limit is None else limit,
        "now": time.time(),
    }
    params.update((f"p{i}", s) for i, s in enumerate(plain))
    return db.execute(_history_sql(len(plain)), params).fetchall()


def _upsert_run(db: sqlite3.Connection, values: Mapping[str, Any]) -> None:
    if db.execute(_RUN_UPSERT, values).fetchone() is None:
        run_id = values["run_id"]
        raise RunStateError(f"run {run_id!r} belongs to another session", run_id=run_id)


class LiteSessions(SQLSessions):
    """Sessions and runs on SQLite: the seam's write transactions on sqlite3 directly."""

    engine: SQLiteEngine

    def _begin_body(
        self, record: RunRecord, values: dict[str, Any], history: HistoryWindow | None
    ) -> Callable[[sqlite3.Connection], tuple[Any, Any]]:
        def body(db: sqlite3.Connection) -> tuple[Any, Any]:
            now = values["updated_at"]
            new = {
                "session_id": record.session_id,
                "agent_id": record.agent_id,
                "user_id": record.user_id,
                "now": now,
            }
            session = db.execute(_SESSION_UPSERT, new).fetchone()
            if session is None:
                raise SessionOwnershipError(
                    f"session {record.session_id!r} belongs to another user",
                    session_id=record.session_id,
                )
            # the history is read before this run exists; a session made just now has none
            made_now = session[_CREATED] == now
            rows = [] if made_now else _history_rows(db, record.session_id, history)
            _upsert_run(db, values)
            return session, rows

        return body

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float | None = None,
    ) -> SessionContext:
        values = L.run_row(record)
        now = time.time()
        expires = now + self._lease(lease)
        values.update(status="running", lease_expires_at=expires, updated_at=now)
        session, rows = await self.engine.raw_write(self._begin_body(record, values, history))
        record.status = "running"
        record.lease_expires_at = expires
        msgs, ids = self.window(rows, history)
        row = dict(zip(SESSION_COLS, session, strict=True))
        return SessionContext.build(L.session_from_row(row), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float | None = None) -> None:
        values = L.run_row(record)
        now = time.time()
        expires = now + self._lease(lease)
        values.update(status="running", lease_expires_at=expires, updated_at=now)
        await self.engine.raw_write(self._begin_body(record, values, None))
        record.status = "running"
        record.lease_expires_at = expires

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
        max_bytes = self.max_state_bytes
        sid = record.session_id

        def body(db: sqlite3.Connection) -> tuple[dict[str, Any], float]:
            now = time.time()
            key = {"session_id": sid}
            row = db.execute(_SESSION_LOCKED, key).fetchone()
            if row is None:
                new = {"session_id": sid, "agent_id": record.agent_id}
                db.execute(_SESSION_INSERT, {**new, "user_id": record.user_id, "now": now})
                row = (record.user_id, "{}")
            check_session_owner(sid, row[0], record.user_id)
            if delta:
                new_state, text = L.merge_state(json.loads(row[1]), delta, max_bytes, sid)
                db.execute(_SESSION_SET_STATE, {**key, "now": now, "new_state": text})
            else:  # the session row is not written (its updated_at: its last run's start)
                new_state = json.loads(row[1])
            values.update(lease_expires_at=None, updated_at=now)
            if db.execute(_RUN_END, values).rowcount != 1:  # gone, moved, another session's
                _upsert_run(db, values)
            return new_state, now

        new_state, now = await self.engine.raw_write(body)
        record.lease_expires_at = None
        record.updated_at = now
        return new_state
