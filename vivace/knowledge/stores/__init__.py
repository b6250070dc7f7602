"""Knowledge stores: in-memory (exact, for tests), SQLite (the embedded default: FTS5 and
``sqlite-vec`` through ``apsw``) and PostgreSQL (pgvector HNSW and full-text search)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import UserError
from .base import BaseInfo, DocumentWrite, KnowledgeStore, StoredChunk

if TYPE_CHECKING:
    from .memory import InMemoryKnowledgeStore
    from .postgres import PostgresKnowledgeStore
    from .sqlite import SQLiteKnowledgeStore

__all__ = [
    "DEFAULT_STORE",
    "BaseInfo",
    "DocumentWrite",
    "InMemoryKnowledgeStore",
    "KnowledgeStore",
    "PostgresKnowledgeStore",
    "SQLiteKnowledgeStore",
    "StoredChunk",
    "open_store",
]

DEFAULT_STORE = "sqlite:///.vivace/knowledge.db"

_SHARED: dict[str, KnowledgeStore] = {}


def open_store(spec: Any = None) -> KnowledgeStore:
    """The store for ``spec``: a :class:`KnowledgeStore` as is; ``"memory"``; an SQLite URL
    (``sqlite:///path.db``) or path; a PostgreSQL URL; a vivace
    :class:`~vivace.storage.Storage` (its database). URLs give one shared store per process."""
    if isinstance(spec, KnowledgeStore):
        return spec
    if spec is None:
        spec = DEFAULT_STORE
    if not isinstance(spec, str):
        url = getattr(spec, "url", None) or getattr(spec, "_url", None)
        path = getattr(spec, "path", None)
        if isinstance(path, str) and path:
            spec = f"sqlite:///{path}"
        elif isinstance(url, str):
            spec = url
        elif type(spec).__name__ == "InMemoryStorage":
            spec = "memory"
        else:
            raise UserError(f"cannot keep a knowledge base in {spec!r}")
    if spec in ("memory", "memory://", ":memory:"):
        from .memory import InMemoryKnowledgeStore

        return InMemoryKnowledgeStore()
    got = _SHARED.get(spec)
    if got is not None:
        return got
    if spec.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        from .postgres import PostgresKnowledgeStore

        store: KnowledgeStore = PostgresKnowledgeStore(spec)
    else:
        from .sqlite import SQLiteKnowledgeStore

        path = spec
        for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
            if spec.startswith(prefix):
                path = spec[len(prefix) :]
                break
        else:
            if "://" in spec:
                raise UserError(f"unknown knowledge store URL {spec!r}")
        store = SQLiteKnowledgeStore(path)
    _SHARED[spec] = store
    return store


def __getattr__(name: str) -> Any:
    mods = {
        "InMemoryKnowledgeStore": ".memory",
        "SQLiteKnowledgeStore": ".sqlite",
        "PostgresKnowledgeStore": ".postgres",
    }
    if name in mods:
        import importlib

        return getattr(importlib.import_module(mods[name], __name__), name)
    raise AttributeError(name)
