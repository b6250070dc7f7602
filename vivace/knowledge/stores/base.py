"""The knowledge store interface: documents, chunks, vectors and full text of named
knowledge bases, with vector and full-text search that apply metadata filters in the store."""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..documents import Chunk
from ..filters import Condition

__all__ = ["BaseInfo", "DocumentWrite", "KnowledgeStore", "StoredChunk", "query_terms"]


@dataclass(slots=True)
class BaseInfo:
    """A stored knowledge base: its vector size, the embedder that made its vectors, its
    declared filter fields (``{"year": "integer"}``) and how much it holds."""

    name: str
    dims: int
    embedder: str
    filters: dict[str, str] = field(default_factory=dict)
    documents: int = 0
    chunks: int = 0
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dims": self.dims,
            "embedder": self.embedder,
            "filters": self.filters,
            "documents": self.documents,
            "chunks": self.chunks,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class DocumentWrite:
    """One document to (re)write: its chunks and their vectors (float32 bytes)."""

    source: str
    hash: str
    metadata: dict[str, Any]
    chunks: list[Chunk]
    vectors: list[bytes]


@dataclass(slots=True)
class StoredChunk:
    """A chunk as a store returns it from a search. ``metadata`` is a dict, or its JSON text
    when the store keeps it as JSON: the text is decoded only for the chunks that become
    hits (a hybrid search fetches ~4x more candidates than it returns)."""

    id: int | str
    source: str
    position: int
    text: str
    metadata: dict[str, Any] | str


_TERM = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "do",
        "does",
        "can",
        "you",
        "your",
    ]
)


def query_terms(query: str, limit: int = 32) -> list[str]:
    """The words of a natural-language query for full-text search (lower case, stop words
    dropped unless nothing else is left, no repeats)."""
    words = [w.lower() for w in _TERM.findall(query)]
    kept = [w for w in words if w not in _STOP] or words
    return list(dict.fromkeys(kept))[:limit]


class KnowledgeStore(ABC):
    """Where knowledge bases live. One store may hold many knowledge bases; all methods are
    async and safe to call from concurrent tasks. Writes of one call are atomic: after a
    failure nothing of it is visible."""

    url: str = ""

    @abstractmethod
    async def ensure_base(
        self, name: str, *, dims: int, embedder: str, filters: Mapping[str, str]
    ) -> BaseInfo:
        """Create the knowledge base, or check that the stored one has the same ``dims``
        (raising :class:`~vivace.errors.UserError` when not) and return it."""

    @abstractmethod
    async def get_base(self, name: str) -> BaseInfo | None: ...

    @abstractmethod
    async def list_bases(self) -> list[BaseInfo]: ...

    @abstractmethod
    async def drop_base(self, name: str) -> bool:
        """Delete the knowledge base and everything in it."""

    @abstractmethod
    async def document_hashes(self, name: str, sources: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each of ``sources`` that exists."""

    @abstractmethod
    async def write_documents(self, name: str, docs: Sequence[DocumentWrite]) -> None:
        """Replace each document's chunks (a new source is added) in one transaction."""

    @abstractmethod
    async def delete_documents(
        self, name: str, *, sources: Sequence[str] | None = None, conds: Sequence[Condition] = ()
    ) -> int:
        """Delete the documents named by ``sources`` and/or whose metadata match ``conds``;
        the number of documents deleted."""

    @abstractmethod
    async def list_documents(
        self, name: str, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """``{"source", "hash", "chunks", "metadata", "updated_at"}`` per document."""

    @abstractmethod
    async def vector_search(
        self, name: str, vector: bytes, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        """The ``k`` chunks nearest to ``vector`` (cosine similarity, best first)."""

    @abstractmethod
    async def text_search(
        self, name: str, query: str, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        """The ``k`` best full-text matches for ``query`` (higher score is better)."""

    async def save_job(self, job: dict[str, Any]) -> None:
        """Keep an ingest job's status (the server's background ingests), so any worker can
        answer for it. The base keeps it in this process."""
        jobs = self.__dict__.setdefault("_jobs", {})
        jobs[job["job_id"]] = dict(job)

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        """An ingest job saved by :meth:`save_job` (None if unknown)."""
        found = self.__dict__.get("_jobs", {}).get(job_id)
        return dict(found) if found is not None else None

    @contextlib.asynccontextmanager
    async def bulk(self, name: str) -> AsyncIterator[None]:
        """Around a large ingest: a store may defer index maintenance (PostgreSQL builds the
        HNSW index once at the end when the knowledge base was empty)."""
        yield

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
