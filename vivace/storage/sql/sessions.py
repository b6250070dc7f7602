"""SQL sessions and runs: their tables, and the general (SQLAlchemy Core) implementation of
the sessions domain. The run loop's seam has faster versions per dialect
(``_sessions_sqlite``, ``_sessions_pg``) that fall back to this one for unusual cases."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ...errors import NotFound, UserError
from ...messages import Message
from .. import _logic as L
from .._json import dumps, text_in
from ..base import SessionStore
from ..errors import RunStateError, SessionOwnershipError
from ..ownership import check_session_owner, may_act
from ..records import HistoryWindow, RunRecord, SessionContext, SessionRecord
from ..state import SessionState, StateDelta
from ._engine import Engine
from .memory import message_embeddings, working_memory
from .schema import ID, BigId, Time, metadata

__all__ = ["RUN_END_COLS", "RUN_SET_COLS", "SQLSessions", "runs", "sessions"]

sessions = sa.Table(
    "vivace_sessions",
    metadata,
    sa.Column("session_id", ID, primary_key=True),
    sa.Column("agent_id", ID),
    sa.Column("user_id", ID),
    sa.Column("name", sa.Text),  # JSON string (v4)
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_vivace_sessions_agent", "agent_id", "updated_at"),
    sa.Index("ix_vivace_sessions_user", "user_id", "updated_at"),
    sa.Index("ix_vivace_sessions_updated", "updated_at"),
    info={"since": 1},
)

runs = sa.Table(
    "vivace_runs",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, nullable=False, unique=True),
    sa.Column("session_id", ID, nullable=False),
    sa.Column("agent_id", ID),
    sa.Column("user_id", ID),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("input", sa.Text),
    sa.Column("messages", sa.Text, nullable=False),
    sa.Column("output", sa.Text),
    sa.Column("usage", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("paused", sa.Text),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("lease_expires_at", Time),  # v2
    sa.Column("trace_id", ID),  # v4
    sa.Column("span_id", ID),  # v4
    sa.Column("parent_run_id", ID),  # v4
    sa.Index("ix_vivace_runs_session", "session_id", "seq"),
    sa.Index("ix_vivace_runs_updated", "updated_at"),
    # the runs started inside another run (v6: only those are indexed - a partial index, so
    # writing a top-level run, most runs, touches one index less)
    sa.Index(
        "ix_vivace_runs_children",
        "parent_run_id",
        "seq",
        sqlite_where=sa.text("parent_run_id IS NOT NULL"),
        postgresql_where=sa.text("parent_run_id IS NOT NULL"),
        info={"since": 6},
    ),
    info={"since": 1},
)

RUN_SET_COLS = tuple(
    c.name for c in runs.columns if c.name not in ("seq", "run_id", "session_id", "created_at")
)
"""The run columns a later write of the same run replaces."""
RUN_COLS = ("run_id", "session_id", "created_at", *RUN_SET_COLS)
RUN_END_COLS = tuple(c for c in RUN_SET_COLS if c != "parent_run_id")
"""The columns a run's end writes over its row, matched on its run, session and parent (not
rewriting the parent leaves that index alone; a changed parent takes the upsert)."""
SESSION_COLS = tuple(c.name for c in sessions.columns)
_SESSION_NEW_COLS = ("session_id", "agent_id", "user_id", "created_at", "updated_at")


def status_filter(statuses: Collection[str], now: float) -> sa.ColumnElement[bool]:
    """SQL for "effective status in statuses" (a running run past its lease is incomplete)."""
    c = runs.c
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


class _HotStatements:
    """The run loop's statements, built once with bind parameters (SQLAlchemy then reuses
    their compiled form; building Core statements per call costs more than running them)."""

    def __init__(self, engine: Engine) -> None:
        b = sa.bindparam
        ins = engine.insert(sessions).values(
            {c: b(c) for c in _SESSION_NEW_COLS} | {"name": None, "state": "{}", "metadata": "{}"}
        )
        self.session_upsert = ins.on_conflict_do_update(
            index_elements=[sessions.c.session_id],
            set_={"updated_at": ins.excluded.updated_at},
            where=sessions.c.user_id.is_not_distinct_from(ins.excluded.user_id),
        ).returning(*sessions.c)
        self.session_insert = ins.on_conflict_do_nothing(index_elements=[sessions.c.session_id])
        self.session_get = sa.select(sessions).where(sessions.c.session_id == b("session_id"))
        self.session_lock = (
            sa.select(sessions.c.user_id, sessions.c.state)
            .where(sessions.c.session_id == b("session_id"))
            .with_for_update()
        )
        # a run's end reads the session, locked as an update would lock it (FOR NO KEY
        # UPDATE), but does not write it unless the state changed: its updated_at is when
        # its last run started
        self.session_state_owned = (
            sa.select(sessions.c.state)
            .where(
                sessions.c.session_id == b("b_session_id"),
                sessions.c.user_id.is_not_distinct_from(b("b_user_id")),
            )
            .with_for_update(key_share=True)  # SQLAlchemy: FOR NO KEY UPDATE
        )
        self.session_set_state = (
            sa.update(sessions)
            .where(sessions.c.session_id == b("b_session_id"))
            .values(updated_at=b("now"), state=b("new_state"))
        )
        rins = engine.insert(runs).values({c: b(c) for c in RUN_COLS})
        self.run_upsert = rins.on_conflict_do_update(
            index_elements=[runs.c.run_id],
            set_={k: rins.excluded[k] for k in RUN_SET_COLS},
            where=runs.c.session_id == rins.excluded.session_id,
        ).returning(runs.c.seq)
        self.run_update = (
            sa.update(runs)
            .where(
                runs.c.run_id == b("b_run_id"),
                runs.c.session_id == b("b_session_id"),
                runs.c.parent_run_id.is_not_distinct_from(b("b_parent_run_id")),
            )
            .values({k: b(k) for k in RUN_END_COLS})
        )
        self.run_get = sa.select(runs).where(runs.c.run_id == b("run_id"))
        c = runs.c
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


class SQLSessions(SessionStore):
    """Sessions and runs in SQL, every call one SQLAlchemy Core transaction."""

    def __init__(self, engine: Engine, *, max_state_bytes: int, run_lease: float) -> None:
        self.engine = engine
        self.max_state_bytes = max_state_bytes
        self.run_lease = run_lease
        self._hot: _HotStatements | None = None

    @property
    def _q(self) -> _HotStatements:
        if self._hot is None:
            self._hot = _HotStatements(self.engine)
        return self._hot

    def _lease(self, lease: float | None) -> float:
        return self.run_lease if lease is None else lease

    # -- helpers --------------------------------------------------------------------------------

    def _history_rows(
        self, conn: sa.Connection, session_id: str, window: HistoryWindow | None, now: float
    ) -> list[Any]:
        if window is None:
            return []
        limit = window.run_limit()
        if "running" in window.statuses:
            q: Any = (
                sa.select(runs.c.messages, runs.c.run_id)
                .where(runs.c.session_id == session_id, status_filter(window.statuses, now))
                .order_by(runs.c.seq.desc())
            )
            if limit is not None:
                q = q.limit(limit)
            return list(conn.execute(q).all())
        if limit is None:
            limit = -1 if self.engine.dialect == "sqlite" else None
        params = {
            "session_id": session_id,
            "statuses": list(window.statuses),
            "with_incomplete": "incomplete" in window.statuses,
            "now": now,
            "limit": limit,
        }
        return list(conn.execute(self._q.history, params).all())

    @staticmethod
    def window(
        rows: Sequence[Any], window: HistoryWindow | None
    ) -> tuple[list[Message], list[str]]:
        """History rows ``(messages JSON, run_id)`` newest first, windowed."""
        if window is None:
            return [], []
        msgs, n = L.window_messages([L.parse_messages(r[0]) for r in rows], window)
        return msgs, [r[1] for r in rows[:n]][::-1]

    @staticmethod
    def _new_session(record: RunRecord, now: float) -> dict[str, Any]:
        return {
            "session_id": record.session_id,
            "agent_id": record.agent_id,
            "user_id": record.user_id,
            "created_at": now,
            "updated_at": now,
        }

    def _upsert_run(self, conn: sa.Connection, values: dict[str, Any]) -> None:
        params = {k: values[k] for k in RUN_COLS}
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
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        L.check_opt_id("agent_id", agent_id)

        def body(conn: sa.Connection) -> tuple[Any, list[Any]]:
            row = conn.execute(self._q.session_get, {"session_id": session_id}).first()
            if row is None:
                return None, []
            check_session_owner(session_id, row._mapping["user_id"], user_id)
            return row, self._history_rows(conn, session_id, history, time.time())

        row, rows = await self.engine.read(body)
        if row is None:
            return SessionContext.build(None, [])
        msgs, ids = self.window(rows, history)
        return SessionContext.build(L.session_from_row(row._mapping), msgs, ids)

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
        lease: float | None = None,
    ) -> SessionContext:
        values = L.run_row(record)
        seconds = self._lease(lease)

        def body(conn: sa.Connection) -> tuple[Any, list[Any], float]:
            # history first: it is read before this run exists
            rows = self._history_rows(conn, record.session_id, history, time.time())
            row, now = self._start(conn, record, values, seconds)
            return row, rows, now

        row, rows, now = await self.engine.write(body)
        record.status = "running"
        record.lease_expires_at = now + seconds
        msgs, ids = self.window(rows, history)
        return SessionContext.build(L.session_from_row(row._mapping), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float | None = None) -> None:
        values = L.run_row(record)
        seconds = self._lease(lease)
        _, now = await self.engine.write(lambda conn: self._start(conn, record, values, seconds))
        record.status = "running"
        record.lease_expires_at = now + seconds

    async def heartbeat(self, run_id: str, *, lease: float | None = None) -> bool:
        L.check_id("run_id", run_id)
        async with self.engine.tx(True) as conn:
            res = await conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id, runs.c.status == "running")
                .values(lease_expires_at=time.time() + self._lease(lease))
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
        check_session_owner(record.session_id, row[0], record.user_id)
        return json.loads(row[1])

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state: SessionState | StateDelta | None = None,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        values = L.run_row(record)
        delta = L.state_delta(state, state_changes, state_deletes)
        return await self._finish(record, values, delta)

    async def _finish(
        self, record: RunRecord, values: dict[str, Any], delta: StateDelta
    ) -> dict[str, Any]:
        """The locking path: lock the session row, merge on the current state, write."""
        max_bytes = self.max_state_bytes

        def body(conn: sa.Connection) -> tuple[dict[str, Any], float]:
            now = time.time()
            upd: dict[str, Any] = {"now": now, "b_session_id": record.session_id}
            if not delta:
                # fast path: the session exists and is this user's (its row kept meanwhile)
                upd["b_user_id"] = record.user_id
                owned = conn.execute(self._q.session_state_owned, upd).first()
                if owned is not None:
                    self._write_run(conn, record, values, now)
                    return json.loads(owned[0]), now
            current = self._lock_session(conn, record, now)
            if delta:
                state, text = L.merge_state(current, delta, max_bytes, record.session_id)
                upd["new_state"] = text
                conn.execute(self._q.session_set_state, upd)
            else:
                state = current
            self._write_run(conn, record, values, now)
            return state, now

        state, now = await self.engine.write(body)
        record.lease_expires_at = None
        record.updated_at = now
        return state

    def _write_run(
        self, conn: sa.Connection, record: RunRecord, values: dict[str, Any], now: float
    ) -> None:
        values.update(lease_expires_at=None, updated_at=now)
        params = {k: values[k] for k in RUN_END_COLS}
        params.update(
            b_run_id=record.run_id,
            b_session_id=record.session_id,
            b_parent_run_id=values["parent_run_id"],
        )
        if not conn.execute(self._q.run_update, params).rowcount:
            self._upsert_run(conn, values)

    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float | None = None
    ) -> RunRecord:
        L.check_id("run_id", run_id)
        L.check_opt_id("user_id", user_id)
        seconds = self._lease(lease)
        async with self.engine.tx(True) as conn:
            row = (
                await conn.execute(sa.select(runs).where(runs.c.run_id == run_id).with_for_update())
            ).first()
            if row is None:
                raise NotFound(f"no run {run_id!r}", run_id=run_id)
            m = row._mapping
            check_session_owner(m["session_id"], m["user_id"], user_id)
            now = time.time()
            status = L.effective_status(m["status"], m["lease_expires_at"], now)
            if status != "paused":
                raise RunStateError(
                    f"run {run_id!r} is {status}, not paused", run_id=run_id, status=status
                )
            await conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(status="running", lease_expires_at=now + seconds, updated_at=now)
            )
            d = dict(m)
        d.update(status="running", lease_expires_at=now + seconds, updated_at=now)
        return L.run_from_row(d, now)

    # -- cancellation across processes ----------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        L.check_id("run_id", run_id)
        c = runs.c
        async with self.engine.tx(True) as conn:
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
            meta[L.CANCEL_KEY] = time.time()
            res = await conn.execute(
                sa.update(runs)
                .where(c.run_id == run_id, c.status == "running")
                .values(metadata=json.dumps(meta))
            )
        return bool(res.rowcount)

    async def cancel_requested(self, run_id: str) -> bool:
        return run_id in await self.cancel_requests((run_id,))

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        ids = list(dict.fromkeys(L.check_ids("run_id", run_ids)))
        if not ids:
            return set()
        c = runs.c
        # the LIKE leaves out (nearly) every row that has no request, so the usual answer is
        # an empty result of one index lookup per id
        q = sa.select(c.run_id, c.metadata).where(
            c.run_id.in_(ids), c.status == "running", c.metadata.like(f'%"{L.CANCEL_KEY}"%')
        )
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return {r[0] for r in rows if L.cancel_flagged(r[1])}

    # -- reading / managing ---------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        L.check_id("run_id", run_id)
        async with self.engine.tx(False) as conn:
            row = (await conn.execute(self._q.run_get, {"run_id": run_id})).first()
        return L.run_from_row(row._mapping) if row is not None else None

    async def list_runs(
        self,
        session_id: str | None = None,
        *,
        parent_run_id: str | None = None,
        statuses: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        if session_id is None and parent_run_id is None:
            raise UserError("list_runs needs a session_id or a parent_run_id")
        L.check_opt_id("session_id", session_id)
        L.check_opt_id("parent_run_id", parent_run_id)
        now = time.time()
        q = sa.select(runs)
        if session_id is not None:
            q = q.where(runs.c.session_id == session_id)
        if parent_run_id is not None:
            q = q.where(runs.c.parent_run_id == parent_run_id)
        if statuses is not None:
            q = q.where(status_filter(statuses, now))
        if limit is not None:
            q = q.order_by(runs.c.seq.desc()).limit(limit)
        else:
            q = q.order_by(runs.c.seq)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = [L.run_from_row(r._mapping, now) for r in rows]
        if limit is not None:
            out.reverse()
        return out

    async def get_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> SessionRecord | None:
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        async with self.engine.tx(False) as conn:
            row = (await conn.execute(self._q.session_get, {"session_id": session_id})).first()
        if row is None or (user_id is not None and not may_act(row._mapping["user_id"], user_id)):
            return None
        return L.session_from_row(row._mapping)

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        L.check_id("session_id", record.session_id)
        L.check_opt_id("user_id", record.user_id)
        L.check_opt_id("agent_id", record.agent_id)
        state = dumps(record.state or {}, "session state")
        L.check_state_size(state, self.max_state_bytes, record.session_id)
        meta = dumps(record.metadata or {}, "session metadata")
        async with self.engine.tx(True) as conn:
            await conn.execute(
                self.engine.insert(sessions)
                .values(
                    session_id=record.session_id,
                    agent_id=record.agent_id,
                    user_id=record.user_id,
                    name=text_in(record.name),
                    state=state,
                    metadata=meta,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                )
                .on_conflict_do_nothing(index_elements=[sessions.c.session_id])
            )
            row = (
                await conn.execute(self._q.session_get, {"session_id": record.session_id})
            ).first()
            assert row is not None
            check_session_owner(record.session_id, row._mapping["user_id"], record.user_id)
        return L.session_from_row(row._mapping)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SessionRecord]:
        L.check_opt_id("agent_id", agent_id)
        L.check_opt_id("user_id", user_id)
        q = sa.select(sessions)
        if agent_id is not None:
            q = q.where(sessions.c.agent_id == agent_id)
        if user_id is not None:
            q = q.where(sessions.c.user_id == user_id)
        q = q.order_by(sessions.c.updated_at.desc(), sessions.c.session_id.desc())
        q = q.limit(limit).offset(offset)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [L.session_from_row(r._mapping) for r in rows]

    async def _require(self, conn: Any, session_id: str, user_id: str | None) -> Any:
        row = (
            await conn.execute(
                sa.select(sessions).where(sessions.c.session_id == session_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no session {session_id!r}", session_id=session_id)
        if user_id is not None:
            check_session_owner(session_id, row._mapping["user_id"], user_id)
        return row

    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        async with self.engine.tx(True) as conn:
            row = await self._require(conn, session_id, user_id)
            now = time.time()
            await conn.execute(
                sa.update(sessions)
                .where(sessions.c.session_id == session_id)
                .values(name=text_in(name), updated_at=now)
            )
        rec = L.session_from_row(row._mapping)
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
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        delta = L.state_delta(None, changes, deletes)
        async with self.engine.tx(True) as conn:
            row = await self._require(conn, session_id, user_id)
            state, text = L.merge_state(
                json.loads(row._mapping["state"]), delta, self.max_state_bytes, session_id
            )
            await conn.execute(
                sa.update(sessions)
                .where(sessions.c.session_id == session_id)
                .values(state=text, updated_at=time.time())
            )
        return state

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        async with self.engine.tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(sessions.c.user_id)
                    .where(sessions.c.session_id == session_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return False
            if user_id is not None:
                check_session_owner(session_id, row[0], user_id)
            await self._delete_sessions(conn, [session_id])
        return True

    async def _delete_sessions(self, conn: Any, ids: Sequence[str]) -> None:
        for chunk in _chunks(ids, 500):
            await conn.execute(sa.delete(runs).where(runs.c.session_id.in_(chunk)))
            await conn.execute(
                sa.delete(message_embeddings).where(message_embeddings.c.session_id.in_(chunk))
            )
            await conn.execute(
                sa.delete(working_memory).where(
                    working_memory.c.scope.in_(("session", "summary")),
                    working_memory.c.owner_id.in_(chunk),
                )
            )
            await conn.execute(sa.delete(sessions).where(sessions.c.session_id.in_(chunk)))

    async def prune_runs(self, before: float) -> int:
        now = time.time()
        async with self.engine.tx(True) as conn:
            res = await conn.execute(
                sa.delete(runs).where(
                    runs.c.updated_at < before, sa.not_(status_filter(("running",), now))
                )
            )
        return int(res.rowcount or 0)

    async def prune_sessions(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(sessions.c.session_id).where(sessions.c.updated_at < before)
                    )
                )
                .scalars()
                .all()
            )
            await self._delete_sessions(conn, ids)
        return len(ids)


def _chunks(items: Sequence[str], n: int) -> list[Sequence[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]
