"""Composite storage: each domain routed to its own backend."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .base import DOMAINS, SessionStore, Storage
from .records import HistoryWindow, RunRecord, SessionContext, SessionRecord
from .state import SessionState, StateDelta

__all__ = ["CompositeStorage"]


class _CompositeSessions(SessionStore):
    """The sessions store of one backend, deleting session memory in another."""

    def __init__(self, inner: SessionStore, owner: CompositeStorage) -> None:
        self._inner = inner
        self._owner = owner
        self.run_lease = inner.run_lease
        self.max_state_bytes = inner.max_state_bytes

    async def load_context(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        history: HistoryWindow | None = None,
    ) -> SessionContext:
        return await self._inner.load_context(
            session_id, user_id=user_id, agent_id=agent_id, history=history
        )

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float | None = None,
    ) -> SessionContext:
        return await self._inner.begin_run(record, history=history, lease=lease)

    async def start_run(self, record: RunRecord, *, lease: float | None = None) -> None:
        await self._inner.start_run(record, lease=lease)

    async def heartbeat(self, run_id: str, *, lease: float | None = None) -> bool:
        return await self._inner.heartbeat(run_id, lease=lease)

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state: SessionState | StateDelta | None = None,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        return await self._inner.finish_run(
            record, state=state, state_changes=state_changes, state_deletes=state_deletes
        )

    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float | None = None
    ) -> RunRecord:
        return await self._inner.resume_run(run_id, user_id=user_id, lease=lease)

    async def request_cancel(self, run_id: str) -> bool:
        return await self._inner.request_cancel(run_id)

    async def cancel_requested(self, run_id: str) -> bool:
        return await self._inner.cancel_requested(run_id)

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        return await self._inner.cancel_requests(run_ids)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._inner.get_run(run_id)

    async def list_runs(
        self,
        session_id: str | None = None,
        *,
        parent_run_id: str | None = None,
        statuses: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return await self._inner.list_runs(
            session_id, parent_run_id=parent_run_id, statuses=statuses, limit=limit
        )

    async def get_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> SessionRecord | None:
        return await self._inner.get_session(session_id, user_id=user_id)

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        return await self._inner.create_session(record)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SessionRecord]:
        return await self._inner.list_sessions(
            agent_id=agent_id, user_id=user_id, limit=limit, offset=offset
        )

    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        return await self._inner.rename_session(session_id, name, user_id=user_id)

    async def update_state(
        self,
        session_id: str,
        *,
        changes: Mapping[str, Any] | None = None,
        deletes: Collection[str] = (),
        user_id: str | None = None,
    ) -> dict[str, Any]:
        return await self._inner.update_state(
            session_id, changes=changes, deletes=deletes, user_id=user_id
        )

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        deleted = await self._inner.delete_session(session_id, user_id=user_id)
        if deleted and self._owner._backend_of("memory") is not self._owner._backend_of("sessions"):
            await self._owner.memory.delete_session_data(session_id)
        return deleted

    async def prune_runs(self, before: float) -> int:
        return await self._inner.prune_runs(before)

    async def prune_sessions(self, before: float) -> int:
        return await self._inner.prune_sessions(before)


class CompositeStorage(Storage):
    """Route domains to backends; unrouted domains go to ``default``.

    ``CompositeStorage(default=PostgresStorage(url), traces=SQLiteStorage("traces.db"))``.
    Deleting a session also deletes its memory when memory lives in another backend.
    ``knowledge`` (a storage or a knowledge store URL) is where knowledge bases opened on this
    storage keep their documents and vectors (``KnowledgeBase(store=composite)``; default:
    the sessions backend).
    """

    def __init__(
        self,
        default: Storage,
        *,
        sessions: Storage | None = None,
        memory: Storage | None = None,
        workflows: Storage | None = None,
        traces: Storage | None = None,
        scores: Storage | None = None,
        events: Storage | None = None,
        knowledge: Storage | str | None = None,
    ) -> None:
        self.default = default
        self.knowledge_backend = knowledge
        self._routes: dict[str, Storage] = {
            "sessions": sessions or default,
            "memory": memory or default,
            "workflows": workflows or default,
            "traces": traces or default,
            "scores": scores or default,
            "events": events or default,
        }
        self.sessions = _CompositeSessions(self._routes["sessions"].sessions, self)
        self.memory = self._routes["memory"].memory
        self.workflows = self._routes["workflows"].workflows
        self.traces = self._routes["traces"].traces
        self.scores = self._routes["scores"].scores
        self.events = self._routes["events"].events

    def _backend_of(self, domain: str) -> Storage:
        return self._routes[domain]

    def _backends(self) -> list[Storage]:
        out: list[Storage] = []
        for d in DOMAINS:
            b = self._routes[d]
            if all(b is not x for x in out):
                out.append(b)
        return out

    async def setup(self) -> None:
        for b in self._backends():
            await b.setup()

    async def close(self) -> None:
        for b in self._backends():
            await b.close()

    def __repr__(self) -> str:
        routes = ", ".join(f"{d}={self._routes[d]!r}" for d in DOMAINS)
        return f"CompositeStorage({routes})"
