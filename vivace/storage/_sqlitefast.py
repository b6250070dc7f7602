"""SQLite's run-loop seam on the sqlite3 connection itself.

``begin_run``, ``start_run`` and ``finish_run`` each run as one write transaction
(``BEGIN IMMEDIATE`` ... ``COMMIT``) whole in the storage's worker thread, like every SQLite
write - but with plain SQL text on the pooled sqlite3 connection instead of SQLAlchemy Core
execution, whose per-statement overhead (tens of microseconds) was most of the cost: SQLite
itself runs these statements in microseconds. The statements are generated from the schema
definition, so they cannot drift from it. Holding the write lock makes read-then-write safe.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from ..errors import VivaceError
from . import _logic as L
from . import schema as S
from .errors import RunStateError, SessionOwnershipError
from .records import HistoryWindow, RunRecord, SessionContext, SessionRecord
from .sql import _SQLSessions

if TYPE_CHECKING:
    from .sql import SQLiteStorage

__all__ = ["LiteSessions"]

_T = TypeVar("_T")
_S, _R = S.sessions, S.runs
_RUN_COLS = [c.name for c in _R.columns if c.name != "seq"]
_RUN_SET_COLS = (
    "agent_id", "user_id", "status", "input", "messages", "output", "usage", "error",
    "paused", "metadata", "updated_at", "lease_expires_at",
)  # fmt: skip
_SESSION_COLS = [c.name for c in _S.columns]


def _q(name: str) -> str:
    return f'"{name}"'


_ST, _RT = _q(_S.name), _q(_R.name)
_SESSION_UPSERT = (
    f"INSERT INTO {_ST} (session_id, agent_id, user_id, name, state, metadata, created_at, "
    "updated_at) VALUES (:session_id, :agent_id, :user_id, NULL, '{}', '{}', :now, :now) "
    "ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at "
    f"WHERE {_ST}.user_id IS excluded.user_id "
    f"RETURNING {', '.join(_q(c) for c in _SESSION_COLS)}"
)
_SESSION_INSERT = (
    f"INSERT INTO {_ST} (session_id, agent_id, user_id, name, state, metadata, created_at, "
    "updated_at) VALUES (:session_id, :agent_id, :user_id, NULL, '{}', '{}', :now, :now) "
    "ON CONFLICT (session_id) DO NOTHING"
)
_SESSION_LOCKED = f"SELECT user_id, state FROM {_ST} WHERE session_id = :session_id"
_SESSION_TOUCH = f"UPDATE {_ST} SET updated_at = :now WHERE session_id = :session_id"
_SESSION_SET_STATE = (
    f"UPDATE {_ST} SET updated_at = :now, state = :new_state WHERE session_id = :session_id"
)
_RUN_UPSERT = (
    f"INSERT INTO {_RT} ({', '.join(_q(c) for c in _RUN_COLS)}) "
    f"VALUES ({', '.join(':' + c for c in _RUN_COLS)}) "
    f"ON CONFLICT (run_id) DO UPDATE SET "
    f"{', '.join(f'{_q(c)} = excluded.{_q(c)}' for c in _RUN_SET_COLS)} "
    f"WHERE {_RT}.session_id = excluded.session_id RETURNING seq"
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


class LiteSessions(_SQLSessions):
    """Sessions and runs on SQLite: the seam's write transactions on sqlite3 directly."""

    _o: SQLiteStorage

    async def _hot_write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """``body(sqlite3 connection)`` in one ``BEGIN IMMEDIATE`` transaction, in the
        worker thread (one hop), one writer of this process at a time."""
        owner = self._o
        await owner._ready()

        def work() -> _T:
            raw = owner._get_engine().raw_connection()
            try:
                db: sqlite3.Connection = raw.driver_connection
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = body(db)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                return out
            finally:
                raw.close()

        try:
            async with owner._writer_lock():
                return await owner._in_thread(work)
        except VivaceError:
            raise
        except (sqlite3.Error, sa.exc.SQLAlchemyError, OSError) as exc:
            raise owner._translate(exc) from exc

    def _begin_body(
        self, record: RunRecord, values: dict[str, Any], history: HistoryWindow | None
    ) -> Callable[[sqlite3.Connection], tuple[Any, Any]]:
        def body(db: sqlite3.Connection) -> tuple[Any, Any]:
            # history first: it is read before this run exists
            rows = _history_rows(db, record.session_id, history)
            new = {
                "session_id": record.session_id,
                "agent_id": record.agent_id,
                "user_id": record.user_id,
                "now": values["updated_at"],
            }
            session = db.execute(_SESSION_UPSERT, new).fetchone()
            if session is None:
                raise SessionOwnershipError(
                    f"session {record.session_id!r} belongs to another user",
                    session_id=record.session_id,
                )
            _upsert_run(db, values)
            return session, rows

        return body

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float = L.DEFAULT_LEASE,
    ) -> SessionContext:
        values = L.run_row(record)
        now = time.time()
        values.update(status="running", lease_expires_at=now + lease, updated_at=now)
        session, rows = await self._hot_write(self._begin_body(record, values, history))
        record.status = "running"
        record.lease_expires_at = now + lease
        msgs, ids = self._window(rows, history)
        return SessionContext.build(_session(session), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float = L.DEFAULT_LEASE) -> None:
        values = L.run_row(record)
        now = time.time()
        values.update(status="running", lease_expires_at=now + lease, updated_at=now)
        await self._hot_write(self._begin_body(record, values, None))
        record.status = "running"
        record.lease_expires_at = now + lease

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
        max_bytes = self._o.max_state_bytes
        sid = record.session_id

        def body(db: sqlite3.Connection) -> tuple[dict[str, Any], float]:
            now = time.time()
            key = {"session_id": sid}
            row = db.execute(_SESSION_LOCKED, key).fetchone()
            if row is None:
                new = {"session_id": sid, "agent_id": record.agent_id}
                db.execute(_SESSION_INSERT, {**new, "user_id": record.user_id, "now": now})
                row = (record.user_id, "{}")
            L.check_owner(sid, row[0], record.user_id)
            if state_changes or state_deletes:
                state, text = L.merge_state(
                    json.loads(row[1]), state_changes, state_deletes, max_bytes, sid
                )
                db.execute(_SESSION_SET_STATE, {**key, "now": now, "new_state": text})
            else:
                state = json.loads(row[1])
                db.execute(_SESSION_TOUCH, {**key, "now": now})
            values.update(lease_expires_at=None, updated_at=now)
            _upsert_run(db, values)
            return state, now

        state, now = await self._hot_write(body)
        record.lease_expires_at = None
        record.updated_at = now
        return state


def _session(row: Any) -> SessionRecord:
    m = dict(zip(_SESSION_COLS, row, strict=True))
    return SessionRecord(
        session_id=m["session_id"],
        agent_id=m["agent_id"],
        user_id=m["user_id"],
        name=m["name"],
        state=json.loads(m["state"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=json.loads(m["metadata"]),
    )
