"""Knowledge bases and agentic RAG: documents in, hybrid search out, a search tool for agents.

``KnowledgeBase`` reads text, Markdown, HTML, PDF, DOCX, CSV/JSON, files, directories and
URLs; chunks them; embeds them (offline with ``"local"``, or any router embedder); stores
them (SQLite with FTS5 + sqlite-vec by default, PostgreSQL with pgvector, or in memory); and
searches them by vector, full text or both fused. ``Agent(knowledge=kb)`` gives an agent the
search tool; ``kb.context()`` puts the top chunks in the prompt instead (classic RAG).
Everything loads lazily: importing :mod:`vivace` does not import this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chunkers import (
        FixedSizeChunker,
        MarkdownChunker,
        RecursiveChunker,
        SemanticChunker,
        SentenceChunker,
    )
    from .context import KnowledgeContext
    from .documents import Chunk, Document, SearchHit
    from .embedders.onnx import OnnxEmbedder
    from .errors import (
        ContentTooLarge,
        EmptyContent,
        FetchError,
        IngestError,
        InvalidFilter,
        MissingExtra,
        UnreadableContent,
        UnsupportedContent,
    )
    from .ingest import IngestProgress, IngestReport, ItemResult
    from .knowledge_base import KnowledgeBase
    from .stores import (
        InMemoryKnowledgeStore,
        KnowledgeStore,
        PostgresKnowledgeStore,
        SQLiteKnowledgeStore,
        open_store,
    )

_LAZY = {
    "KnowledgeBase": ".knowledge_base",
    "KnowledgeContext": ".context",
    "Document": ".documents",
    "Chunk": ".documents",
    "SearchHit": ".documents",
    "FixedSizeChunker": ".chunkers",
    "RecursiveChunker": ".chunkers",
    "MarkdownChunker": ".chunkers",
    "SentenceChunker": ".chunkers",
    "SemanticChunker": ".chunkers",
    "OnnxEmbedder": ".embedders.onnx",
    "IngestReport": ".ingest",
    "IngestProgress": ".ingest",
    "ItemResult": ".ingest",
    "IngestError": ".errors",
    "UnsupportedContent": ".errors",
    "UnreadableContent": ".errors",
    "EmptyContent": ".errors",
    "ContentTooLarge": ".errors",
    "FetchError": ".errors",
    "InvalidFilter": ".errors",
    "MissingExtra": ".errors",
    "KnowledgeStore": ".stores",
    "InMemoryKnowledgeStore": ".stores",
    "SQLiteKnowledgeStore": ".stores",
    "PostgresKnowledgeStore": ".stores",
    "open_store": ".stores",
}

__all__ = [
    "Chunk",
    "ContentTooLarge",
    "Document",
    "EmptyContent",
    "FetchError",
    "FixedSizeChunker",
    "InMemoryKnowledgeStore",
    "IngestError",
    "IngestProgress",
    "IngestReport",
    "InvalidFilter",
    "ItemResult",
    "KnowledgeBase",
    "KnowledgeContext",
    "KnowledgeStore",
    "MarkdownChunker",
    "MissingExtra",
    "OnnxEmbedder",
    "PostgresKnowledgeStore",
    "RecursiveChunker",
    "SQLiteKnowledgeStore",
    "SearchHit",
    "SemanticChunker",
    "SentenceChunker",
    "UnreadableContent",
    "UnsupportedContent",
    "open_store",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'vivace.knowledge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
