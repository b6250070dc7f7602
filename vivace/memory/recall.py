"""Semantic recall: find past messages similar to the new input (with their neighbours)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import UserError
from ..storage.base import MessageEmbedding

if TYPE_CHECKING:
    from ..messages import Message
    from ..storage import RunRecord, Storage
    from .embedder import Embedder

__all__ = ["SemanticRecall"]


@dataclass(slots=True)
class SemanticRecall:
    """Recall settings: ``top_k`` hits, each with ``message_range`` neighbouring messages
    (an int for both sides or ``(before, after)``), searched within the ``session`` or all of
    the ``user``'s sessions, keeping hits with cosine similarity >= ``threshold``.

    Messages are indexed with :meth:`index_run` after a run; only text of ``roles`` is
    embedded. The vectors live in ``storage.memory`` and are searched by the vector index the
    knowledge stores share (:mod:`vivace.storage.vectors`: pgvector HNSW on PostgreSQL,
    sqlite-vec on SQLite where it loads, an exact scan otherwise).
    """

    embedder: Embedder
    top_k: int = 4
    message_range: int | tuple[int, int] = 1
    scope: Literal["session", "user"] = "session"
    threshold: float | None = None
    roles: tuple[str, ...] = ("user", "assistant")

    def __post_init__(self) -> None:
        if self.scope not in ("session", "user"):
            raise UserError(f"recall scope must be 'session' or 'user', not {self.scope!r}")

    def _range(self) -> tuple[int, int]:
        r = self.message_range
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))

    async def index_run(self, storage: Storage, record: RunRecord) -> int:
        """Embed and store the run's text messages (call once the run has finished)."""
        picked = [m for m in record.messages if m.role in self.roles and m.text.strip()]
        if not picked:
            return 0
        vectors = await self.embedder.embed([m.text for m in picked])
        if len(vectors) != len(picked):
            raise UserError("the embedder returned a different number of vectors than texts")
        await storage.memory.add_message_embeddings(
            [
                MessageEmbedding(
                    record.session_id, m, v, run_id=record.run_id, user_id=record.user_id
                )
                for m, v in zip(picked, vectors, strict=True)
            ]
        )
        return len(picked)

    async def recall(
        self,
        storage: Storage,
        query: str,
        *,
        session_id: str | None,
        user_id: str | None,
        exclude_run_ids: Collection[str] = (),
    ) -> list[Message]:
        """Messages similar to ``query`` with their neighbours, in conversation order,
        without duplicates. Pass the history window's run ids as ``exclude_run_ids``."""
        if not query.strip():
            return []
        if self.scope == "session" and not session_id:
            raise UserError("session-scoped recall needs a session_id")
        if self.scope == "user" and not user_id:
            raise UserError("user-scoped recall needs a user_id")
        [vector] = await self.embedder.embed([query])
        hits = await storage.memory.search_messages(
            vector,
            session_id=session_id if self.scope == "session" else None,
            user_id=user_id,
            top_k=self.top_k,
            threshold=self.threshold,
            exclude_run_ids=exclude_run_ids,
        )
        before, after = self._range()
        seen: dict[tuple[str, int], Message] = {}
        for hit in hits:
            around = (
                await storage.memory.message_neighbours(hit, before=before, after=after)
                if before or after
                else [hit]
            )
            for h in around:
                if h.run_id is not None and h.run_id in exclude_run_ids:
                    continue
                seen.setdefault((h.session_id, h.id), h.message)
        return [seen[k] for k in sorted(seen)]

    @staticmethod
    def format(messages: Sequence[Message]) -> str:
        """A block to put before the conversation: the recalled messages as text."""
        lines = [f"{m.role}: {m.text}" for m in messages if m.text]
        return "## Related earlier messages\n" + "\n".join(lines) if lines else ""
