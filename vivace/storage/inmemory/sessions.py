"""In-memory sessions and runs (rows kept as JSON text, like the SQL backends)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from ...errors import NotFound, UserError
from .. import _logic as L
from .._json import dumps, text_in
from ..base import SessionStore
from ..errors import RunStateError
from ..ownership import check_session_owner, may_act
from ..records import HistoryWindow, RunRecord, SessionContext, SessionRecord
from ..state import SessionState, StateDelta

__all__ = ["MemorySessions"]


class MemorySessions(SessionStore):
    """Sessions and runs in this process. ``delete_session_data`` is called with a deleted
    session's id (the storage deletes the session's memory with it)."""

    def __init__(
        self,
        *,
        max_state_bytes: int,
        run_lease: float,
        delete_session_data: Callable[[str], Awaitable[None]],
    ) -> None:
        self.max_state_bytes = max_state_bytes
        self.run_lease = run_lease
        self._delete_session_data = delete_session_data
        self._sessions: dict[str, dict[str, Any]] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._seq = 0

    # -- helpers --------------------------------------------------------------------------------

    def _lease(self, lease: float | None) -> float:
        return self.run_lease if lease is None else lease

    def _owned(self, session_id: str, user_id: str | None) -> dict[str, Any] | None:
        row = self._sessions.get(session_id)
        if row is not None:
            check_session_owner(session_id, row["user_id"], user_id)
        return row

    def _ensure_session(self, record: RunRecord, now: float) -> dict[str, Any]:
        row = self._sessions.get(record.session_id)
        if row is None:
            row = {
                "session_id": record.session_id,
                "agent_id": record.agent_id,
                "user_id": record.user_id,
                "name": None,
                "state": "{}",
                "metadata": "{}",
                "created_at": now,
                "updated_at": now,
            }
            self._sessions[record.session_id] = row
        else:
            check_session_owner(record.session_id, row["user_id"], record.user_id)
        return row

    def _history(
        self, session_id: str, window: HistoryWindow | None
    ) -> tuple[list[Any], list[str]]:
        if window is None:
            return [], []
        now = time.time()
        runs = [
            r
            for r in self._runs.values()
            if r["session_id"] == session_id
            and L.effective_status(r["status"], r["lease_expires_at"], now) in window.statuses
        ]
        runs.sort(key=lambda r: r["seq"], reverse=True)
        limit = window.run_limit()
        if limit is not None:
            runs = runs[:limit]
        msgs, n = L.window_messages([L.parse_messages(r["messages"]) for r in runs], window)
        return msgs, [r["run_id"] for r in runs[:n]][::-1]

    def _context(
        self, row: dict[str, Any] | None, session_id: str, window: HistoryWindow | None
    ) -> SessionContext:
        if row is None:
            return SessionContext.build(None, [])
        msgs, ids = self._history(session_id, window)
        return SessionContext.build(L.session_from_row(row), msgs, ids)

    def _check_run_session(self, record: RunRecord) -> None:
        old = self._runs.get(record.run_id)
        if old is not None and old["session_id"] != record.session_id:
            raise RunStateError(
                f"run {record.run_id!r} belongs to another session", run_id=record.run_id
            )

    def _put_run(self, values: dict[str, Any], now: float) -> None:
        values["updated_at"] = now
        old = self._runs.get(values["run_id"])
        if old is not None:
            values["seq"] = old["seq"]
            values["created_at"] = old["created_at"]
        else:
            self._seq += 1
            values["seq"] = self._seq
        self._runs[values["run_id"]] = values

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
        row = self._owned(session_id, user_id)
        return self._context(row, session_id, history)

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float | None = None,
    ) -> SessionContext:
        L.check_run_ids(record)
        row = self._owned(record.session_id, record.user_id)
        ctx = self._context(row, record.session_id, history)
        await self.start_run(record, lease=lease)
        return ctx

    async def start_run(self, record: RunRecord, *, lease: float | None = None) -> None:
        now = time.time()
        values = L.run_row(record)  # validate before touching anything
        self._check_run_session(record)
        row = self._ensure_session(record, now)
        expires = now + self._lease(lease)
        values.update(status="running", lease_expires_at=expires)
        self._put_run(values, now)
        row["updated_at"] = now
        record.status = "running"
        record.lease_expires_at = expires

    async def heartbeat(self, run_id: str, *, lease: float | None = None) -> bool:
        L.check_id("run_id", run_id)
        r = self._runs.get(run_id)
        if r is None or r["status"] != "running":
            return False
        r["lease_expires_at"] = time.time() + self._lease(lease)
        return True

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state: SessionState | StateDelta | None = None,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        now = time.time()
        values = L.run_row(record)
        delta = L.state_delta(state, state_changes, state_deletes)
        self._check_run_session(record)
        existing = self._sessions.get(record.session_id)
        if existing is not None:
            check_session_owner(record.session_id, existing["user_id"], record.user_id)
        current = json.loads(existing["state"]) if existing is not None else {}
        new_state, text = L.merge_state(current, delta, self.max_state_bytes, record.session_id)
        row = self._ensure_session(record, now)
        values["lease_expires_at"] = None
        self._put_run(values, now)
        if delta:  # otherwise the session is not written (updated_at: its last run's start)
            row["state"] = text
            row["updated_at"] = now
        record.lease_expires_at = None
        record.updated_at = now
        return new_state

    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float | None = None
    ) -> RunRecord:
        L.check_id("run_id", run_id)
        L.check_opt_id("user_id", user_id)
        r = self._runs.get(run_id)
        if r is None:
            raise NotFound(f"no run {run_id!r}", run_id=run_id)
        check_session_owner(r["session_id"], r["user_id"], user_id)
        status = L.effective_status(r["status"], r["lease_expires_at"])
        if status != "paused":
            raise RunStateError(
                f"run {run_id!r} is {status}, not paused", run_id=run_id, status=status
            )
        now = time.time()
        r["status"] = "running"
        r["lease_expires_at"] = now + self._lease(lease)
        r["updated_at"] = now
        return L.run_from_row(r)

    # -- cancellation across processes ----------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        L.check_id("run_id", run_id)
        r = self._runs.get(run_id)
        if r is None or L.effective_status(r["status"], r["lease_expires_at"]) != "running":
            return False
        meta = json.loads(r["metadata"] or "{}")
        meta[L.CANCEL_KEY] = time.time()
        r["metadata"] = json.dumps(meta)
        return True

    async def cancel_requested(self, run_id: str) -> bool:
        L.check_id("run_id", run_id)
        r = self._runs.get(run_id)
        return r is not None and r["status"] == "running" and L.cancel_flagged(r["metadata"])

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        return {r for r in L.check_ids("run_id", run_ids) if await self.cancel_requested(r)}

    # -- reading / managing ---------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        L.check_id("run_id", run_id)
        r = self._runs.get(run_id)
        return L.run_from_row(r) if r is not None else None

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
        runs = sorted(
            (
                r
                for r in self._runs.values()
                if (session_id is None or r["session_id"] == session_id)
                and (parent_run_id is None or r["parent_run_id"] == parent_run_id)
            ),
            key=lambda r: r["seq"],
        )
        out = [L.run_from_row(r, now) for r in runs]
        if statuses is not None:
            out = [r for r in out if r.status in statuses]
        if limit is not None:
            out = out[-limit:] if limit else []
        return out

    async def get_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> SessionRecord | None:
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        row = self._sessions.get(session_id)
        if row is None or (user_id is not None and not may_act(row["user_id"], user_id)):
            return None
        return L.session_from_row(row)

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        L.check_id("session_id", record.session_id)
        L.check_opt_id("user_id", record.user_id)
        L.check_opt_id("agent_id", record.agent_id)
        row = self._sessions.get(record.session_id)
        if row is not None:
            check_session_owner(record.session_id, row["user_id"], record.user_id)
            return L.session_from_row(row)
        state = dumps(record.state or {}, "session state")
        L.check_state_size(state, self.max_state_bytes, record.session_id)
        self._sessions[record.session_id] = {
            "session_id": record.session_id,
            "agent_id": record.agent_id,
            "user_id": record.user_id,
            "name": text_in(record.name),
            "state": state,
            "metadata": dumps(record.metadata or {}, "session metadata"),
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        return L.session_from_row(self._sessions[record.session_id])

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
        rows = [
            r
            for r in self._sessions.values()
            if (agent_id is None or r["agent_id"] == agent_id)
            and (user_id is None or r["user_id"] == user_id)
        ]
        rows.sort(key=lambda r: (r["updated_at"], r["session_id"]), reverse=True)
        return [L.session_from_row(r) for r in rows[offset : offset + limit]]

    def _require(self, session_id: str, user_id: str | None) -> dict[str, Any]:
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        row = self._sessions.get(session_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}", session_id=session_id)
        if user_id is not None:
            check_session_owner(session_id, row["user_id"], user_id)
        return row

    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        row = self._require(session_id, user_id)
        row["name"] = text_in(name)
        row["updated_at"] = time.time()
        return L.session_from_row(row)

    async def update_state(
        self,
        session_id: str,
        *,
        changes: Mapping[str, Any] | None = None,
        deletes: Collection[str] = (),
        user_id: str | None = None,
    ) -> dict[str, Any]:
        row = self._require(session_id, user_id)
        delta = L.state_delta(None, changes, deletes)
        state, text = L.merge_state(
            json.loads(row["state"]), delta, self.max_state_bytes, session_id
        )
        row["state"] = text
        row["updated_at"] = time.time()
        return state

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        L.check_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        row = self._sessions.get(session_id)
        if row is None:
            return False
        if user_id is not None:
            check_session_owner(session_id, row["user_id"], user_id)
        del self._sessions[session_id]
        for rid in [k for k, r in self._runs.items() if r["session_id"] == session_id]:
            del self._runs[rid]
        await self._delete_session_data(session_id)
        return True

    async def prune_runs(self, before: float) -> int:
        old = [
            k
            for k, r in self._runs.items()
            if r["updated_at"] < before
            and L.effective_status(r["status"], r["lease_expires_at"]) != "running"
        ]
        for k in old:
            del self._runs[k]
        return len(old)

    async def prune_sessions(self, before: float) -> int:
        old = [k for k, r in self._sessions.items() if r["updated_at"] < before]
        for k in old:
            await self.delete_session(k)
        return len(old)
