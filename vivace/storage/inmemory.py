"""In-memory storage for tests and throwaway agents (one process, nothing persisted).

Records are kept as JSON text, like the SQL backends, so the same rules apply: every value
must be JSON-serializable and reads never alias what the caller holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..errors import NotFound
from . import _logic as L
from ._vec import cosine, keyword_score, norm, words
from .base import (
    CANCEL_KEY,
    EventStore,
    MemoryStore,
    MessageEmbedding,
    Scope,
    ScoreStore,
    SessionStore,
    Storage,
    TraceStore,
    WorkflowStore,
    _cancel_flagged,
)
from .errors import RunStateError
from .records import (
    HistoryWindow,
    MessageHit,
    RunRecord,
    ScoreRecord,
    SessionContext,
    SessionRecord,
    SpanRecord,
    UserMemory,
    WorkflowSnapshot,
)

__all__ = ["InMemoryStorage"]


def _session_from(row: dict[str, Any]) -> SessionRecord:
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


class _Sessions(SessionStore):
    def __init__(self, owner: InMemoryStorage) -> None:
        self._o = owner
        self._sessions: dict[str, dict[str, Any]] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._seq = 0

    # -- helpers --------------------------------------------------------------------------------

    def _owned(self, session_id: str, user_id: str | None) -> dict[str, Any] | None:
        row = self._sessions.get(session_id)
        if row is not None:
            L.check_owner(session_id, row["user_id"], user_id)
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
            L.check_owner(record.session_id, row["user_id"], record.user_id)
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
        return SessionContext.build(_session_from(row), msgs, ids)

    def _check_run_session(self, record: RunRecord) -> None:
        old = self._runs.get(record.run_id)
        if old is not None and old["session_id"] != record.session_id:
            raise RunStateError(
                f"run {record.run_id!r} belongs to another session", run_id=record.run_id
            )

    def _put_run(
        self, record: RunRecord, status: str | None = None, lease: float | None = None
    ) -> None:
        now = time.time()
        values = L.run_row(record)
        if status is not None:
            values["status"] = status
        values["lease_expires_at"] = now + lease if lease is not None else None
        values["updated_at"] = now
        old = self._runs.get(record.run_id)
        if old is not None:
            if old["session_id"] != record.session_id:
                raise RunStateError(
                    f"run {record.run_id!r} belongs to another session", run_id=record.run_id
                )
            values["seq"] = old["seq"]
            values["created_at"] = old["created_at"]
        else:
            self._seq += 1
            values["seq"] = self._seq
        self._runs[record.run_id] = values

    # -- seam -----------------------------------------------------------------------------------

    async def load_context(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        history: HistoryWindow | None = None,
    ) -> SessionContext:
        row = self._owned(session_id, user_id)
        return self._context(row, session_id, history)

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float = L.DEFAULT_LEASE,
    ) -> SessionContext:
        row = self._owned(record.session_id, record.user_id)
        ctx = self._context(row, record.session_id, history)
        await self.start_run(record, lease=lease)
        return ctx

    async def start_run(self, record: RunRecord, *, lease: float = L.DEFAULT_LEASE) -> None:
        now = time.time()
        L.run_row(record)  # validate before touching anything
        self._check_run_session(record)
        row = self._ensure_session(record, now)
        self._put_run(record, "running", lease)
        row["updated_at"] = now
        record.status = "running"
        record.lease_expires_at = now + lease

    async def heartbeat(self, run_id: str, *, lease: float = L.DEFAULT_LEASE) -> bool:
        r = self._runs.get(run_id)
        if r is None or r["status"] != "running":
            return False
        r["lease_expires_at"] = time.time() + lease
        return True

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        now = time.time()
        L.run_row(record)
        self._check_run_session(record)
        existing = self._sessions.get(record.session_id)
        if existing is not None:
            L.check_owner(record.session_id, existing["user_id"], record.user_id)
        current = json.loads(existing["state"]) if existing is not None else {}
        state, text = L.merge_state(
            current, state_changes, state_deletes, self._o.max_state_bytes, record.session_id
        )
        row = self._ensure_session(record, now)
        self._put_run(record)
        row["state"] = text
        row["updated_at"] = now
        record.lease_expires_at = None
        return state

    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float = L.DEFAULT_LEASE
    ) -> RunRecord:
        r = self._runs.get(run_id)
        if r is None:
            raise NotFound(f"no run {run_id!r}", run_id=run_id)
        L.check_owner(r["session_id"], r["user_id"], user_id)
        if r["status"] != "paused":
            raise RunStateError(f"run {run_id!r} is {r['status']}, not paused", run_id=run_id)
        r["status"] = "running"
        r["lease_expires_at"] = time.time() + lease
        r["updated_at"] = time.time()
        return L.run_from_row(r)

    # -- cancellation across processes ----------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        r = self._runs.get(run_id)
        if r is None or L.effective_status(r["status"], r["lease_expires_at"]) != "running":
            return False
        meta = json.loads(r["metadata"] or "{}")
        meta[CANCEL_KEY] = time.time()
        r["metadata"] = json.dumps(meta)
        return True

    async def cancel_requested(self, run_id: str) -> bool:
        r = self._runs.get(run_id)
        return r is not None and r["status"] == "running" and _cancel_flagged(r["metadata"])

    # -- reading / managing ---------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        r = self._runs.get(run_id)
        return L.run_from_row(r) if r is not None else None

    async def list_runs(
        self, session_id: str, *, statuses: Collection[str] | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        now = time.time()
        runs = sorted(
            (r for r in self._runs.values() if r["session_id"] == session_id),
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
        row = self._sessions.get(session_id)
        if row is None:
            return None
        if user_id is not None:
            L.check_owner(session_id, row["user_id"], user_id)
        return _session_from(row)

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        row = self._sessions.get(record.session_id)
        if row is not None:
            L.check_owner(record.session_id, row["user_id"], record.user_id)
            return _session_from(row)
        state = L.dumps(record.state or {}, "session state")
        L.check_state_size(state, self._o.max_state_bytes, record.session_id)
        self._sessions[record.session_id] = {
            "session_id": record.session_id,
            "agent_id": record.agent_id,
            "user_id": record.user_id,
            "name": record.name,
            "state": state,
            "metadata": L.dumps(record.metadata or {}, "session metadata"),
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        return _session_from(self._sessions[record.session_id])

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SessionRecord]:
        rows = [
            r
            for r in self._sessions.values()
            if (agent_id is None or r["agent_id"] == agent_id)
            and (user_id is None or r["user_id"] == user_id)
        ]
        rows.sort(key=lambda r: (r["updated_at"], r["session_id"]), reverse=True)
        return [_session_from(r) for r in rows[offset : offset + limit]]

    def _require(self, session_id: str, user_id: str | None) -> dict[str, Any]:
        row = self._sessions.get(session_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}", session_id=session_id)
        if user_id is not None:
            L.check_owner(session_id, row["user_id"], user_id)
        return row

    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        row = self._require(session_id, user_id)
        row["name"] = name
        row["updated_at"] = time.time()
        return _session_from(row)

    async def update_state(
        self,
        session_id: str,
        *,
        changes: Mapping[str, Any] | None = None,
        deletes: Collection[str] = (),
        user_id: str | None = None,
    ) -> dict[str, Any]:
        row = self._require(session_id, user_id)
        state, text = L.merge_state(
            json.loads(row["state"]), changes, deletes, self._o.max_state_bytes, session_id
        )
        row["state"] = text
        row["updated_at"] = time.time()
        return state

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        row = self._sessions.get(session_id)
        if row is None:
            return False
        if user_id is not None:
            L.check_owner(session_id, row["user_id"], user_id)
        del self._sessions[session_id]
        for rid in [k for k, r in self._runs.items() if r["session_id"] == session_id]:
            del self._runs[rid]
        await self._o.memory.delete_session_data(session_id)
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


class _Memory(MemoryStore):
    def __init__(self) -> None:
        self._working: dict[tuple[str, str], tuple[str, float]] = {}
        self._memories: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._next_id = 0

    async def get_working_memory(self, scope: Scope, owner_id: str) -> str | None:
        item = self._working.get((scope, owner_id))
        return item[0] if item else None

    async def set_working_memory(self, scope: Scope, owner_id: str, content: str) -> None:
        self._working[(scope, owner_id)] = (str(content), time.time())

    async def delete_working_memory(self, scope: Scope, owner_id: str) -> bool:
        return self._working.pop((scope, owner_id), None) is not None

    async def add_user_memory(
        self, memory: UserMemory, *, embedding: Sequence[float] | None = None
    ) -> UserMemory:
        d = memory.to_dict()
        d.pop("score", None)
        d["embedding"] = list(embedding) if embedding is not None else None
        self._memories[memory.memory_id] = json.loads(L.dumps(d, "memory"))
        return UserMemory.from_dict(d)

    async def get_user_memory(self, memory_id: str, *, user_id: str) -> UserMemory | None:
        d = self._memories.get(memory_id)
        if d is None or d["user_id"] != user_id:
            return None
        return UserMemory.from_dict(d)

    async def list_user_memories(
        self, user_id: str, *, agent_id: str | None = None, limit: int = 100
    ) -> list[UserMemory]:
        rows = [
            d
            for d in self._memories.values()
            if d["user_id"] == user_id and (agent_id is None or d["agent_id"] == agent_id)
        ]
        rows.sort(key=lambda d: d["created_at"], reverse=True)
        return [UserMemory.from_dict(d) for d in rows[:limit]]

    async def search_user_memories(
        self, user_id: str, query: str, *, limit: int = 5, embedding: Sequence[float] | None = None
    ) -> list[UserMemory]:
        rows = [d for d in self._memories.values() if d["user_id"] == user_id]
        return _rank_memories(rows, query, embedding, limit)

    async def update_user_memory(
        self,
        memory_id: str,
        *,
        user_id: str,
        content: str | None = None,
        topics: Sequence[str] | None = None,
        embedding: Sequence[float] | None = None,
    ) -> UserMemory:
        d = self._memories.get(memory_id)
        if d is None or d["user_id"] != user_id:
            raise NotFound(f"no memory {memory_id!r} for this user", memory_id=memory_id)
        if content is not None:
            d["content"] = str(content)
        if topics is not None:
            d["topics"] = [str(t) for t in topics]
        if embedding is not None:
            d["embedding"] = list(embedding)
        d["updated_at"] = time.time()
        return UserMemory.from_dict(d)

    async def delete_user_memory(self, memory_id: str, *, user_id: str) -> bool:
        d = self._memories.get(memory_id)
        if d is None or d["user_id"] != user_id:
            return False
        del self._memories[memory_id]
        return True

    async def add_message_embeddings(self, items: Sequence[MessageEmbedding]) -> None:
        now = time.time()
        for it in items:
            self._next_id += 1
            self._messages.append(
                {
                    "id": self._next_id,
                    "session_id": it.session_id,
                    "run_id": it.run_id,
                    "user_id": it.user_id,
                    "message": L.dumps(it.message.to_dict(), "message"),
                    "embedding": [float(x) for x in it.embedding],
                    "created_at": now,
                }
            )

    def _hit(self, row: dict[str, Any], score: float) -> MessageHit:
        from ..messages import Message

        return MessageHit(
            row["id"], row["session_id"], row["run_id"], row["user_id"],
            Message.from_dict(json.loads(row["message"])), score,
        )  # fmt: skip

    async def search_messages(
        self,
        embedding: Sequence[float],
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        top_k: int = 4,
        threshold: float | None = None,
        exclude_run_ids: Collection[str] = (),
    ) -> list[MessageHit]:
        if session_id is None and user_id is None:
            from ..errors import UserError

            raise UserError("search_messages needs a session_id or a user_id scope")
        qn = norm(embedding)
        scored = []
        for row in self._messages:
            if session_id is not None and row["session_id"] != session_id:
                continue
            if user_id is not None and row["user_id"] != user_id:
                continue
            if row["run_id"] is not None and row["run_id"] in exclude_run_ids:
                continue
            if len(row["embedding"]) != len(embedding):
                continue
            s = cosine(embedding, row["embedding"], qn)
            if threshold is not None and s < threshold:
                continue
            scored.append((s, row["id"], row))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [self._hit(row, s) for s, _, row in scored[:top_k]]

    async def message_neighbours(
        self, hit: MessageHit, *, before: int, after: int
    ) -> list[MessageHit]:
        rows = [r for r in self._messages if r["session_id"] == hit.session_id]
        rows.sort(key=lambda r: r["id"])
        idx = next((i for i, r in enumerate(rows) if r["id"] == hit.id), None)
        if idx is None:
            return []
        return [self._hit(r, 0.0) for r in rows[max(0, idx - before) : idx + after + 1]]

    async def delete_session_data(self, session_id: str) -> None:
        self._working.pop(("session", session_id), None)
        self._working.pop(("summary", session_id), None)
        self._messages = [r for r in self._messages if r["session_id"] != session_id]

    async def prune(self, before: float) -> int:
        n0 = len(self._messages) + len(self._memories)
        self._messages = [r for r in self._messages if r["created_at"] >= before]
        self._memories = {k: d for k, d in self._memories.items() if d["updated_at"] >= before}
        return n0 - len(self._messages) - len(self._memories)


def _rank_memories(
    rows: list[dict[str, Any]], query: str, embedding: Sequence[float] | None, limit: int
) -> list[UserMemory]:
    """Rank memory dicts (with an ``embedding`` list or None) against a query."""
    scored: list[tuple[float, float, dict[str, Any]]] = []
    if embedding is not None:
        qn = norm(embedding)
        for d in rows:
            if d.get("embedding") is not None:
                scored.append((cosine(embedding, d["embedding"], qn), d["created_at"], d))
    else:
        qw = words(query)
        for d in rows:
            s = keyword_score(qw, d["content"] + " " + " ".join(d.get("topics") or ()))
            if s > 0 or not qw:
                scored.append((s, d["created_at"], d))
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    out = []
    for s, _, d in scored[:limit]:
        m = UserMemory.from_dict(d)
        m.score = s
        out.append(m)
    return out


class _Workflows(WorkflowStore):
    def __init__(self) -> None:
        self._snaps: dict[tuple[str, str], str] = {}

    async def save_snapshot(self, snapshot: WorkflowSnapshot) -> None:
        key = (snapshot.workflow, snapshot.run_id)
        d = snapshot.to_dict()
        old = self._snaps.get(key)
        if old is not None:
            d["created_at"] = json.loads(old)["created_at"]
        d["updated_at"] = time.time()
        self._snaps[key] = L.dumps(d, "workflow snapshot")

    async def load_snapshot(self, workflow: str, run_id: str) -> WorkflowSnapshot | None:
        text = self._snaps.get((workflow, run_id))
        return WorkflowSnapshot.from_dict(json.loads(text)) if text else None

    async def list_snapshots(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[WorkflowSnapshot]:
        snaps = [WorkflowSnapshot.from_dict(json.loads(t)) for t in self._snaps.values()]
        snaps = [
            s
            for s in snaps
            if (workflow is None or s.workflow == workflow)
            and (status is None or s.status == status)
        ]
        snaps.sort(key=lambda s: s.updated_at, reverse=True)
        return snaps[:limit]

    async def delete_snapshot(self, workflow: str, run_id: str) -> bool:
        return self._snaps.pop((workflow, run_id), None) is not None

    async def prune(self, before: float) -> int:
        old = [k for k, t in self._snaps.items() if json.loads(t)["updated_at"] < before]
        for k in old:
            del self._snaps[k]
        return len(old)


class _Traces(TraceStore):
    def __init__(self) -> None:
        self._spans: dict[str, str] = {}

    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        texts = [(s.span_id, L.dumps(s.to_dict(), "span")) for s in spans]
        self._spans.update(texts)

    def _all(self) -> list[SpanRecord]:
        return [SpanRecord.from_dict(json.loads(t)) for t in self._spans.values()]

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        spans = [s for s in self._all() if s.trace_id == trace_id]
        spans.sort(key=lambda s: s.start_time)
        return spans

    async def list_spans(
        self, *, run_id: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[SpanRecord]:
        spans = [
            s
            for s in self._all()
            if (run_id is None or s.run_id == run_id)
            and (session_id is None or s.session_id == session_id)
        ]
        spans.sort(key=lambda s: s.start_time, reverse=True)
        return spans[:limit]

    async def prune(self, before: float) -> int:
        old = [s.span_id for s in self._all() if s.start_time < before]
        for k in old:
            del self._spans[k]
        return len(old)


class _Scores(ScoreStore):
    def __init__(self) -> None:
        self._scores: dict[str, str] = {}

    async def add_score(self, score: ScoreRecord) -> None:
        self._scores[score.score_id] = L.dumps(score.to_dict(), "score")

    async def list_scores(
        self,
        *,
        run_id: str | None = None,
        trace_id: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[ScoreRecord]:
        out = [ScoreRecord.from_dict(json.loads(t)) for t in self._scores.values()]
        out = [
            s
            for s in out
            if (run_id is None or s.run_id == run_id)
            and (trace_id is None or s.trace_id == trace_id)
            and (scorer is None or s.scorer == scorer)
        ]
        out.sort(key=lambda s: s.created_at, reverse=True)
        return out[:limit]

    async def prune(self, before: float) -> int:
        old = [k for k, t in self._scores.items() if json.loads(t)["created_at"] < before]
        for k in old:
            del self._scores[k]
        return len(old)


class _Events(EventStore):
    def __init__(self) -> None:
        # run_id -> {seq: (json text, created_at)}
        self._runs: dict[str, dict[int, tuple[str, float]]] = {}

    async def append(
        self, run_id: str, events: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        rows = L.event_rows(run_id, events, time.time())  # validate before changing anything
        if replace:
            self._runs.pop(run_id, None)
        stored = self._runs.setdefault(run_id, {})
        n = 0
        for r in rows:
            if r["seq"] not in stored:
                stored[r["seq"]] = (r["event"], r["created_at"])
                n += 1
        return n

    async def read(
        self, run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[dict[str, Any]]:
        stored = self._runs.get(run_id)
        if not stored:
            return []
        seqs = sorted(s for s in stored if s > after)[: max(limit, 0)]
        return [json.loads(stored[s][0]) for s in seqs]

    async def delete(self, run_id: str) -> int:
        stored = self._runs.pop(run_id, None)
        return len(stored) if stored else 0

    async def prune(self, before: float) -> int:
        n = 0
        for run_id in list(self._runs):
            stored = self._runs[run_id]
            old = [s for s, (_, at) in stored.items() if at < before]
            for s in old:
                del stored[s]
            n += len(old)
            if not stored:
                del self._runs[run_id]
        return n


class InMemoryStorage(Storage):
    """Every domain in this process's memory. Not shared between processes; lost on exit."""

    def __init__(self, *, max_state_bytes: int = L.DEFAULT_MAX_STATE_BYTES) -> None:
        self.max_state_bytes = max_state_bytes
        self.memory = _Memory()
        self.sessions = _Sessions(self)
        self.workflows = _Workflows()
        self.traces = _Traces()
        self.scores = _Scores()
        self.events = _Events()

    def __repr__(self) -> str:
        return "InMemoryStorage()"
