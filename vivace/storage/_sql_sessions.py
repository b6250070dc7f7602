"""SQL sessions and runs: the run loop's seam, listing, ownership, cancel requests."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import NotFound
from ..messages import Message
from . import _logic as L
from . import schema as S
from .base import CANCEL_KEY, SessionStore, _cancel_flagged
from .errors import RunStateError, SessionOwnershipError
from .records import HistoryWindow, RunRecord, SessionContext, SessionRecord

if TYPE_CHECKING:
    from .sql import SQLStorage

_sessions = S.sessions
_runs = S.runs


# -- sessions and runs -------------------------------------------------------------------------


def _session_from_row(row: Any) -> SessionRecord:
    m = row._mapping
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


def _status_filter(statuses: Collection[str], now: float) -> sa.ColumnElement[bool]:
    """SQL for "effective status in statuses" (a running run past its lease is incomplete)."""
    c = _runs.c
    plain = [s for s in statuses if s not in ("running", "incomplete")]
    conds: list[sa.ColumnElement[bool]] = []
    if plain:
        conds.append(c.status.in_(plain))
    if "incomplete" in statuses:
        conds.append(c.status == "incomplete")
        conds.append(sa.and_(c.status == "running", c.lease_expires_at < now))
    if "running" in statuses:
        conds.append(
            sa.and_(
                c.status == "running",
                sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at >= now),
            )
        )
    return sa.or_(*conds) if conds else sa.false()


_RUN_UPDATE_COLS = (
    "agent_id",
    "user_id",
    "status",
    "input",
    "messages",
    "output",
    "usage",
    "error",
    "paused",
    "metadata",
)


_RUN_SET_COLS = (*_RUN_UPDATE_COLS, "updated_at", "lease_expires_at")
_RUN_ALL_COLS = ("run_id", "session_id", "created_at", *_RUN_SET_COLS)
_SESSION_NEW_COLS = ("session_id", "agent_id", "user_id", "created_at", "updated_at")


class _HotStatements:
    """The run loop's statements, built once with bind parameters (SQLAlchemy then reuses
    their compiled form; building Core statements per call costs more than running them)."""

    def __init__(self, owner: SQLStorage) -> None:
        b = sa.bindparam
        ins = owner._insert(_sessions).values(
            {c: b(c) for c in _SESSION_NEW_COLS} | {"name": None, "state": "{}", "metadata": "{}"}
        )
        self.session_upsert = ins.on_conflict_do_update(
            index_elements=[_sessions.c.session_id],
            set_={"updated_at": ins.excluded.updated_at},
            where=_sessions.c.user_id.is_not_distinct_from(ins.excluded.user_id),
        ).returning(*_sessions.c)
        self.session_insert = ins.on_conflict_do_nothing(index_elements=[_sessions.c.session_id])
        self.session_get = sa.select(_sessions).where(_sessions.c.session_id == b("session_id"))
        self.session_lock = (
            sa.select(_sessions.c.user_id, _sessions.c.state)
            .where(_sessions.c.session_id == b("session_id"))
            .with_for_update()
        )
        self.session_touch = (
            sa.update(_sessions)
            .where(_sessions.c.session_id == b("b_session_id"))
            .values(updated_at=b("now"))
        )
        self.session_touch_owned = (
            sa.update(_sessions)
            .where(
                _sessions.c.session_id == b("b_session_id"),
                _sessions.c.user_id.is_not_distinct_from(b("b_user_id")),
            )
            .values(updated_at=b("now"))
            .returning(_sessions.c.state)
        )
        self.session_set_state = (
            sa.update(_sessions)
            .where(_sessions.c.session_id == b("b_session_id"))
            .values(updated_at=b("now"), state=b("new_state"))
        )
        rins = owner._insert(_runs).values({c: b(c) for c in _RUN_ALL_COLS})
        self.run_upsert = rins.on_conflict_do_update(
            index_elements=[_runs.c.run_id],
            set_={k: rins.excluded[k] for k in _RUN_SET_COLS},
            where=_runs.c.session_id == rins.excluded.session_id,
        ).returning(_runs.c.seq)
        self.run_update = (
            sa.update(_runs)
            .where(_runs.c.run_id == b("b_run_id"), _runs.c.session_id == b("b_session_id"))
            .values({k: b(k) for k in _RUN_SET_COLS})
        )
        self.run_get = sa.select(_runs).where(_runs.c.run_id == b("run_id"))
        c = _runs.c
        self.history = (
            sa.select(c.messages, c.run_id)
            .where(
                c.session_id == b("session_id"),
                sa.or_(
                    c.status.in_(b("statuses", expanding=True)),
                    sa.and_(
                        b("with_incomplete"), c.status == "running", c.lease_expires_at < b("now")
                    ),
                ),
            )
            .order_by(c.seq.desc())
            .limit(b("limit"))
        )


class _SQLSessions(SessionStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner
        self._hot: _HotStatements | None = None

    @property
    def _q(self) -> _HotStatements:
        if self._hot is None:
            self._hot = _HotStatements(self._o)
        return self._hot

    # -- helpers --------------------------------------------------------------------------------

    def _history_rows(
        self, conn: sa.Connection, session_id: str, window: HistoryWindow | None, now: float
    ) -> list[Any]:
        if window is None:
            return []
        limit = window.run_limit()
        if "running" in window.statuses:
            q: Any = (
                sa.select(_runs.c.messages, _runs.c.run_id)
                .where(_runs.c.session_id == session_id, _status_filter(window.statuses, now))
                .order_by(_runs.c.seq.desc())
            )
            if limit is not None:
                q = q.limit(limit)
            return list(conn.execute(q).all())
        if limit is None:
            limit = -1 if self._o.dialect_name == "sqlite" else None
        params = {
            "session_id": session_id,
            "statuses": list(window.statuses),
            "with_incomplete": "incomplete" in window.statuses,
            "now": now,
            "limit": limit,
        }
        return list(conn.execute(self._q.history, params).all())

    @staticmethod
    def _window(rows: list[Any], window: HistoryWindow | None) -> tuple[list[Message], list[str]]:
        if window is None:
            return [], []
        msgs, n = L.window_messages([L.parse_messages(r[0]) for r in rows], window)
        return msgs, [r[1] for r in rows[:n]][::-1]

    def _new_session(self, record: RunRecord, now: float) -> dict[str, Any]:
        return {
            "session_id": record.session_id,
            "agent_id": record.agent_id,
            "user_id": record.user_id,
            "created_at": now,
            "updated_at": now,
        }

    def _upsert_run(self, conn: sa.Connection, values: dict[str, Any]) -> None:
        params = {k: values[k] for k in _RUN_ALL_COLS}
        if conn.execute(self._q.run_upsert, params).first() is None:
            raise RunStateError(
                f"run {values['run_id']!r} belongs to another session", run_id=values["run_id"]
            )

    # -- seam -----------------------------------------------------------------------------------

    async def load_context(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        history: HistoryWindow | None = None,
    ) -> SessionContext:
        def body(conn: sa.Connection) -> tuple[Any, list[Any]]:
            row = conn.execute(self._q.session_get, {"session_id": session_id}).first()
            if row is None:
                return None, []
            L.check_owner(session_id, row._mapping["user_id"], user_id)
            return row, self._history_rows(conn, session_id, history, time.time())

        row, rows = await self._o._read(body)
        if row is None:
            return SessionContext.build(None, [])
        msgs, ids = self._window(rows, history)
        return SessionContext.build(_session_from_row(row), msgs, ids)

    def _start(
        self, conn: sa.Connection, record: RunRecord, values: dict[str, Any], lease: float
    ) -> tuple[Any, float]:
        now = time.time()
        row = conn.execute(self._q.session_upsert, self._new_session(record, now)).first()
        if row is None:
            raise SessionOwnershipError(
                f"session {record.session_id!r} belongs to another user",
                session_id=record.session_id,
            )
        values.update(status="running", lease_expires_at=now + lease, updated_at=now)
        self._upsert_run(conn, values)
        return row, now

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float = L.DEFAULT_LEASE,
    ) -> SessionContext:
        values = L.run_row(record)

        def body(conn: sa.Connection) -> tuple[Any, list[Any], float]:
            # history first: it is read before this run exists
            rows = self._history_rows(conn, record.session_id, history, time.time())
            row, now = self._start(conn, record, values, lease)
            return row, rows, now

        row, rows, now = await self._o._write(body)
        record.status = "running"
        record.lease_expires_at = now + lease
        msgs, ids = self._window(rows, history)
        return SessionContext.build(_session_from_row(row), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float = L.DEFAULT_LEASE) -> None:
        values = L.run_row(record)
        _, now = await self._o._write(lambda conn: self._start(conn, record, values, lease))
        record.status = "running"
        record.lease_expires_at = now + lease

    async def heartbeat(self, run_id: str, *, lease: float = L.DEFAULT_LEASE) -> bool:
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.update(_runs)
                .where(_runs.c.run_id == run_id, _runs.c.status == "running")
                .values(lease_expires_at=time.time() + lease)
            )
        return bool(res.rowcount)

    def _lock_session(self, conn: sa.Connection, record: RunRecord, now: float) -> dict[str, Any]:
        """Create the session if missing (race-free), then lock its row; return its state."""
        q, key = self._q.session_lock, {"session_id": record.session_id}
        row = conn.execute(q, key).first()
        if row is None:
            conn.execute(self._q.session_insert, self._new_session(record, now))
            row = conn.execute(q, key).first()
            assert row is not None
        L.check_owner(record.session_id, row[0], record.user_id)
        return json.loads(row[1])

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        values = L.run_row(record)
        if state_changes:
            L.dumps(dict(state_changes), "session state")  # fail before the transaction
        max_bytes = self._o.max_state_bytes

        def body(conn: sa.Connection) -> tuple[dict[str, Any], float]:
            now = time.time()
            upd: dict[str, Any] = {"now": now, "b_session_id": record.session_id}
            if not (state_changes or state_deletes):
                # fast path: touch the session (locking its row) if it is this user's
                upd["b_user_id"] = record.user_id
                touched = conn.execute(self._q.session_touch_owned, upd).first()
                if touched is not None:
                    self._write_run(conn, record, values, now)
                    return json.loads(touched[0]), now
            current = self._lock_session(conn, record, now)
            if state_changes or state_deletes:
                state, text = L.merge_state(
                    current, state_changes, state_deletes, max_bytes, record.session_id
                )
                upd["new_state"] = text
                conn.execute(self._q.session_set_state, upd)
            else:
                state = current
                conn.execute(self._q.session_touch, upd)
            self._write_run(conn, record, values, now)
            return state, now

        state, now = await self._o._write(body)
        record.lease_expires_at = None
        record.updated_at = now
        return state

    def _write_run(
        self, conn: sa.Connection, record: RunRecord, values: dict[str, Any], now: float
    ) -> None:
        values.update(lease_expires_at=None, updated_at=now)
        params = {k: values[k] for k in _RUN_SET_COLS}
        params.update(b_run_id=record.run_id, b_session_id=record.session_id)
        if not conn.execute(self._q.run_update, params).rowcount:
            self._upsert_run(conn, values)

    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float = L.DEFAULT_LEASE
    ) -> RunRecord:
        async with self._o._tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(_runs).where(_runs.c.run_id == run_id).with_for_update()
                )
            ).first()
            if row is None:
                raise NotFound(f"no run {run_id!r}", run_id=run_id)
            m = row._mapping
            L.check_owner(m["session_id"], m["user_id"], user_id)
            if m["status"] != "paused":
                raise RunStateError(f"run {run_id!r} is {m['status']}, not paused", run_id=run_id)
            now = time.time()
            await conn.execute(
                sa.update(_runs)
                .where(_runs.c.run_id == run_id)
                .values(status="running", lease_expires_at=now + lease, updated_at=now)
            )
            d = dict(m)
        d.update(status="running", lease_expires_at=now + lease, updated_at=now)
        return L.run_from_row(d, now)

    # -- cancellation across processes ----------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        c = _runs.c
        async with self._o._tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(c.status, c.lease_expires_at, c.metadata)
                    .where(c.run_id == run_id)
                    .with_for_update()
                )
            ).first()
            if row is None or L.effective_status(row[0], row[1]) != "running":
                return False
            meta = json.loads(row[2] or "{}")
            meta[CANCEL_KEY] = time.time()
            res = await conn.execute(
                sa.update(_runs)
                .where(c.run_id == run_id, c.status == "running")
                .values(metadata=json.dumps(meta))
            )
        return bool(res.rowcount)

    async def cancel_requested(self, run_id: str) -> bool:
        return run_id in await self.cancel_requests((run_id,))

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return set()
        c = _runs.c
        # the LIKE leaves out (nearly) every row that has no request, so the usual answer is
        # an empty result of one index lookup per id
        q = sa.select(c.run_id, c.metadata).where(
            c.run_id.in_(ids), c.status == "running", c.metadata.like(f'%"{CANCEL_KEY}"%')
        )
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return {r[0] for r in rows if _cancel_flagged(r[1])}

    # -- reading / managing ---------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._o._tx(False) as conn:
            row = (await conn.execute(self._q.run_get, {"run_id": run_id})).first()
        return L.run_from_row(row._mapping) if row is not None else None

    async def list_runs(
        self, session_id: str, *, statuses: Collection[str] | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        now = time.time()
        q = sa.select(_runs).where(_runs.c.session_id == session_id)
        if statuses is not None:
            q = q.where(_status_filter(statuses, now))
        if limit is not None:
            q = q.order_by(_runs.c.seq.desc()).limit(limit)
        else:
            q = q.order_by(_runs.c.seq)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = [L.run_from_row(r._mapping, now) for r in rows]
        if limit is not None:
            out.reverse()
        return out

    async def get_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> SessionRecord | None:
        async with self._o._tx(False) as conn:
            row = (
                await conn.execute(sa.select(_sessions).where(_sessions.c.session_id == session_id))
            ).first()
        if row is None:
            return None
        if user_id is not None:
            L.check_owner(session_id, row._mapping["user_id"], user_id)
        return _session_from_row(row)

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        state = L.dumps(record.state or {}, "session state")
        L.check_state_size(state, self._o.max_state_bytes, record.session_id)
        meta = L.dumps(record.metadata or {}, "session metadata")
        async with self._o._tx(True) as conn:
            await conn.execute(
                self._o._insert(_sessions)
                .values(
                    session_id=record.session_id,
                    agent_id=record.agent_id,
                    user_id=record.user_id,
                    name=record.name,
                    state=state,
                    metadata=meta,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                )
                .on_conflict_do_nothing(index_elements=[_sessions.c.session_id])
            )
            row = (
                await conn.execute(
                    sa.select(_sessions).where(_sessions.c.session_id == record.session_id)
                )
            ).first()
            assert row is not None
            L.check_owner(record.session_id, row._mapping["user_id"], record.user_id)
        return _session_from_row(row)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SessionRecord]:
        q = sa.select(_sessions)
        if agent_id is not None:
            q = q.where(_sessions.c.agent_id == agent_id)
        if user_id is not None:
            q = q.where(_sessions.c.user_id == user_id)
        q = q.order_by(_sessions.c.updated_at.desc(), _sessions.c.session_id.desc())
        q = q.limit(limit).offset(offset)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [_session_from_row(r) for r in rows]

    async def _require(self, conn: Any, session_id: str, user_id: str | None) -> Any:
        row = (
            await conn.execute(
                sa.select(_sessions).where(_sessions.c.session_id == session_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no session {session_id!r}", session_id=session_id)
        if user_id is not None:
            L.check_owner(session_id, row._mapping["user_id"], user_id)
        return row

    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        async with self._o._tx(True) as conn:
            row = await self._require(conn, session_id, user_id)
            now = time.time()
            await conn.execute(
                sa.update(_sessions)
                .where(_sessions.c.session_id == session_id)
                .values(name=name, updated_at=now)
            )
        rec = _session_from_row(row)
        rec.name, rec.updated_at = name, now
        return rec

    async def update_state(
        self,
        session_id: str,
        *,
        changes: Mapping[str, Any] | None = None,
        deletes: Collection[str] = (),
        user_id: str | None = None,
    ) -> dict[str, Any]:
        async with self._o._tx(True) as conn:
            row = await self._require(conn, session_id, user_id)
            state, text = L.merge_state(
                json.loads(row._mapping["state"]),
                changes,
                deletes,
                self._o.max_state_bytes,
                session_id,
            )
            await conn.execute(
                sa.update(_sessions)
                .where(_sessions.c.session_id == session_id)
                .values(state=text, updated_at=time.time())
            )
        return state

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        async with self._o._tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(_sessions.c.user_id)
                    .where(_sessions.c.session_id == session_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return False
            if user_id is not None:
                L.check_owner(session_id, row[0], user_id)
            await self._delete_sessions(conn, [session_id])
        return True

    async def _delete_sessions(self, conn: Any, ids: Sequence[str]) -> None:
        for chunk in _chunks(ids, 500):
            await conn.execute(sa.delete(_runs).where(_runs.c.session_id.in_(chunk)))
            await conn.execute(
                sa.delete(S.message_embeddings).where(S.message_embeddings.c.session_id.in_(chunk))
            )
            await conn.execute(
                sa.delete(S.working_memory).where(
                    S.working_memory.c.scope.in_(("session", "summary")),
                    S.working_memory.c.owner_id.in_(chunk),
                )
            )
            await conn.execute(sa.delete(_sessions).where(_sessions.c.session_id.in_(chunk)))

    async def prune_runs(self, before: float) -> int:
        now = time.time()
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.delete(_runs).where(
                    _runs.c.updated_at < before,
                    sa.not_(_status_filter(("running",), now)),
                )
            )
        return int(res.rowcount or 0)

    async def prune_sessions(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(_sessions.c.session_id).where(_sessions.c.updated_at < before)
                    )
                )
                .scalars()
                .all()
            )
            await self._delete_sessions(conn, ids)
        return len(ids)


def _chunks(items: Sequence[str], n: int) -> list[Sequence[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]
