"""In-memory working memory, user memories and message embeddings (searched with the shared
exact index, one per vector size)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

from ...errors import NotFound, UserError
from ...messages import Message
from .. import _logic as L
from .._json import dumps
from .._vec import rank_memories
from ..base import MemoryStore, MessageEmbedding, Scope
from ..records import MessageHit, UserMemory
from ..vectors import ExactIndex, check_vector

__all__ = ["MemoryMemory"]


def _check_memory(memory: UserMemory) -> None:
    L.check_id("memory_id", memory.memory_id)
    L.check_id("user_id", memory.user_id)
    L.check_opt_id("agent_id", memory.agent_id)


class MemoryMemory(MemoryStore):
    """Memory in this process."""

    def __init__(self) -> None:
        self._working: dict[tuple[str, str], tuple[str, float]] = {}
        self._memories: dict[str, dict[str, Any]] = {}
        self._messages: dict[int, dict[str, Any]] = {}  # by id, in insertion order
        self._vectors: dict[int, ExactIndex] = {}  # by vector size
        self._next_id = 0

    async def get_working_memory(self, scope: Scope, owner_id: str) -> str | None:
        L.check_scope(scope)
        L.check_id("owner_id", owner_id)
        item = self._working.get((scope, owner_id))
        return item[0] if item else None

    async def set_working_memory(self, scope: Scope, owner_id: str, content: str) -> None:
        L.check_scope(scope)
        L.check_id("owner_id", owner_id)
        self._working[(scope, owner_id)] = (str(content), time.time())

    async def delete_working_memory(self, scope: Scope, owner_id: str) -> bool:
        L.check_scope(scope)
        L.check_id("owner_id", owner_id)
        return self._working.pop((scope, owner_id), None) is not None

    async def add_user_memory(
        self, memory: UserMemory, *, embedding: Sequence[float] | None = None
    ) -> UserMemory:
        _check_memory(memory)
        d = memory.to_dict()
        d.pop("score", None)
        d["content"] = str(d["content"])
        d["topics"] = [str(t) for t in d["topics"]]
        d["embedding"] = [float(x) for x in embedding] if embedding is not None else None
        self._memories[memory.memory_id] = json.loads(dumps(d, "memory"))
        return UserMemory.from_dict(d)

    async def get_user_memory(self, memory_id: str, *, user_id: str) -> UserMemory | None:
        L.check_id("memory_id", memory_id)
        L.check_id("user_id", user_id)
        d = self._memories.get(memory_id)
        if d is None or d["user_id"] != user_id:
            return None
        return UserMemory.from_dict(d)

    async def list_user_memories(
        self, user_id: str, *, agent_id: str | None = None, limit: int = 100
    ) -> list[UserMemory]:
        L.check_id("user_id", user_id)
        L.check_opt_id("agent_id", agent_id)
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
        L.check_id("user_id", user_id)
        rows = [d for d in self._memories.values() if d["user_id"] == user_id]
        return rank_memories(rows, query, embedding, limit)

    async def update_user_memory(
        self,
        memory_id: str,
        *,
        user_id: str,
        content: str | None = None,
        topics: Sequence[str] | None = None,
        embedding: Sequence[float] | None = None,
    ) -> UserMemory:
        L.check_id("memory_id", memory_id)
        L.check_id("user_id", user_id)
        d = self._memories.get(memory_id)
        if d is None or d["user_id"] != user_id:
            raise NotFound(f"no memory {memory_id!r} for this user", memory_id=memory_id)
        if content is not None:
            d["content"] = str(content)
        if topics is not None:
            d["topics"] = [str(t) for t in topics]
        if embedding is not None:
            d["embedding"] = [float(x) for x in embedding]
        d["updated_at"] = time.time()
        return UserMemory.from_dict(d)

    async def delete_user_memory(self, memory_id: str, *, user_id: str) -> bool:
        L.check_id("memory_id", memory_id)
        L.check_id("user_id", user_id)
        d = self._memories.get(memory_id)
        if d is None or d["user_id"] != user_id:
            return False
        del self._memories[memory_id]
        return True

    async def add_message_embeddings(self, items: Sequence[MessageEmbedding]) -> None:
        now = time.time()
        rows: list[tuple[dict[str, Any], list[float]]] = []
        for it in items:
            L.check_id("session_id", it.session_id)
            L.check_opt_id("run_id", it.run_id)
            L.check_opt_id("user_id", it.user_id)
            vec = check_vector(it.embedding, "a message embedding")
            row = {
                "session_id": it.session_id,
                "run_id": it.run_id,
                "user_id": it.user_id,
                "message": dumps(it.message.to_dict(), "message"),
                "dims": len(vec),
                "created_at": now,
            }
            rows.append((row, vec))
        for row, vec in rows:
            self._next_id += 1
            row["id"] = self._next_id
            self._messages[self._next_id] = row
            index = self._vectors.get(len(vec))
            if index is None:
                index = self._vectors[len(vec)] = ExactIndex(len(vec))
            index.add_many([(self._next_id, vec)])

    def _forget(self, keep: Any) -> int:
        gone: dict[int, list[int]] = {}
        for i, r in self._messages.items():
            if not keep(r):
                gone.setdefault(r["dims"], []).append(i)
        for dims, ids in gone.items():
            for i in ids:
                del self._messages[i]
            self._vectors[dims].remove(ids)
        return sum(map(len, gone.values()))

    def _hit(self, row: dict[str, Any], score: float) -> MessageHit:
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
            raise UserError("search_messages needs a session_id or a user_id scope")
        L.check_opt_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        exclude = set(L.check_ids("run_id", exclude_run_ids))
        if not len(embedding) or top_k <= 0:
            return []
        embedding = check_vector(embedding, "the query embedding")
        index = self._vectors.get(len(embedding))
        if index is None:
            return []
        candidates = [
            i
            for i, row in self._messages.items()
            if row["dims"] == index.dims
            and (session_id is None or row["session_id"] == session_id)
            and (user_id is None or row["user_id"] == user_id)
            and (row["run_id"] is None or row["run_id"] not in exclude)
        ]
        found = index.search(embedding, top_k, candidates=candidates, threshold=threshold)
        return [self._hit(self._messages[i], s) for i, s in found]

    async def message_neighbours(
        self, hit: MessageHit, *, before: int, after: int
    ) -> list[MessageHit]:
        rows = [r for r in self._messages.values() if r["session_id"] == hit.session_id]
        idx = next((i for i, r in enumerate(rows) if r["id"] == hit.id), None)
        if idx is None:
            return []
        return [self._hit(r, 0.0) for r in rows[max(0, idx - before) : idx + after + 1]]

    async def delete_session_data(self, session_id: str) -> None:
        L.check_id("session_id", session_id)
        self._working.pop(("session", session_id), None)
        self._working.pop(("summary", session_id), None)
        self._forget(lambda r: r["session_id"] != session_id)

    async def prune(self, before: float) -> int:
        n0 = len(self._memories)
        gone = self._forget(lambda r: r["created_at"] >= before)
        self._memories = {k: d for k, d in self._memories.items() if d["updated_at"] >= before}
        return gone + n0 - len(self._memories)
