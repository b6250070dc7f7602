"""What flows through a knowledge base: documents in, chunks stored, hits out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chunk", "Document", "SearchHit", "content_hash"]


def content_hash(text: str, metadata: dict[str, Any] | None = None) -> str:
    """The hash that decides whether a document changed: its text and its metadata."""
    h = hashlib.blake2b(digest_size=16)
    h.update(text.encode("utf-8", "surrogatepass"))
    if metadata:
        import json

        h.update(b"\x00")
        h.update(json.dumps(metadata, sort_keys=True, default=str).encode())
    return h.hexdigest()


@dataclass(slots=True)
class Document:
    """A unit of content read from somewhere: ``source`` identifies it within a knowledge
    base (a path, a URL, a record id...); adding a document with a known source replaces
    it when its content changed and writes nothing when it did not.

    ``markdown`` says the text is Markdown (headings drive the Markdown chunker);
    ``page_starts`` are the offsets where pages begin (PDF), so chunks get a ``page``.
    """

    source: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    markdown: bool = False
    page_starts: list[int] | None = None

    @property
    def hash(self) -> str:
        return content_hash(self.text, self.metadata)


@dataclass(slots=True)
class Chunk:
    """A piece of a document: its ``source``, ``position`` (0, 1, 2... within the document),
    character offsets ``start``/``end`` in the document's text, and metadata (the document's
    plus the chunker's, e.g. ``headings`` or ``page``)."""

    source: str
    position: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    end: int = 0


@dataclass(slots=True)
class SearchHit:
    """A retrieved chunk with its ``score`` (higher is better; what it means depends on the
    search mode: cosine similarity, BM25, a fused rank score or a reranker's score) and the
    ranks it had in the vector and full-text lists (None when it was not in one)."""

    source: str
    position: int
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_id: int | str | None = None
    vector_rank: int | None = None
    text_rank: int | None = None

    def citation(self) -> dict[str, Any]:
        """The JSON form shown to the model, on run results and in events."""
        out: dict[str, Any] = {
            "source": self.source,
            "position": self.position,
            "score": round(self.score, 6),
            "text": self.text,
        }
        if self.metadata:
            out["metadata"] = self.metadata
        return out
