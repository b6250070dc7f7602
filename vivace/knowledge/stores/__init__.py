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
    (``sqlite:///path.db``) or path; a PostgreSQL URL; or a vivace
    :class:`~vivace.storage.Storage`: its PostgreSQL database and schema, the SQLite file
    beside its own (``vivace.db`` -> ``vivace-knowledge.db``: the storage keeps its file to
    itself), one in-memory store per in-memory storage, and for a
    :class:`~vivace.storage.CompositeStorage` its ``knowledge`` route (else its sessions
    backend). URLs give one shared store per process."""
    if isinstance(spec, KnowledgeStore):
        return spec
    if spec is None:
        spec = DEFAULT_STORE
    if not isinstance(spec, str):
        return _from_storage(spec)
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


def _from_storage(storage: Any) -> KnowledgeStore:
    import os

    kind = type(storage).__name__
    if kind == "CompositeStorage":
        route = getattr(storage, "knowledge_backend", None)
        if route is None:
            route = storage._backend_of("sessions")
        return open_store(route)
    if kind == "InMemoryStorage":
        found = _BY_STORAGE.get(id(storage))
        if found is None or found[0] is not storage:
            from .memory import InMemoryKnowledgeStore

            found = _BY_STORAGE[id(storage)] = (storage, InMemoryKnowledgeStore())
        return found[1]
    path = getattr(storage, "path", None)
    if kind == "SQLiteStorage" and isinstance(path, str):
        if path == ":memory:":
            return open_store("memory")
        stem, ext = os.path.splitext(path)
        return open_store(f"sqlite:///{stem}-knowledge{ext or '.db'}")
    engine = getattr(storage, "engine", None)
    url = getattr(engine, "url", None)
    if kind == "PostgresStorage" and isinstance(url, str):
        key = f"{url}#{storage.schema or 'public'}"
        got = _SHARED.get(key)
        if got is None:
            from .postgres import PostgresKnowledgeStore

            got = _SHARED[key] = PostgresKnowledgeStore(url, schema=storage.schema or "public")
        return got
    raise UserError(f"cannot keep a knowledge base in {storage!r}")


_BY_STORAGE: dict[int, tuple[Any, KnowledgeStore]] = {}


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
