"""Durable storage: sessions and runs, memory, workflow snapshots, traces, scores and the
server's run events.

Backends: :class:`InMemoryStorage`, :class:`SQLiteStorage` (the embedded default),
:class:`PostgresStorage`, and :class:`CompositeStorage` routing each domain to a backend.
:func:`open_storage` picks one from a URL. The SQL backends (and SQLAlchemy) load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    EventStore,
    MemoryStore,
    MessageEmbedding,
    ScoreStore,
    SessionStore,
    Storage,
    TraceStore,
    WorkflowStore,
)
from .errors import (
    CorruptDatabaseError,
    RunStateError,
    SchemaMissingError,
    SchemaVersionError,
    SessionOwnershipError,
    StateConflict,
    StateNotSerializableError,
    StateTooLargeError,
    StateUpdateError,
)
from .ownership import may_act
from .records import (
    HistoryWindow,
    MessageHit,
    ResumeOutcome,
    RunRecord,
    RunStatus,
    ScoreRecord,
    ScoreStats,
    SessionContext,
    SessionRecord,
    SpanRecord,
    StepRecord,
    TraceMetricsRow,
    TraceSummary,
    UserMemory,
    WorkflowRunRecord,
)
from .state import SessionState, StateDelta

if TYPE_CHECKING:
    from .clickhouse import ClickHouseStorage
    from .composite import CompositeStorage
    from .inmemory import InMemoryStorage
    from .lease import keep_alive
    from .sql import PostgresStorage, SQLiteStorage, SQLStorage

__all__ = [
    "ClickHouseStorage",
    "CompositeStorage",
    "CorruptDatabaseError",
    "EventStore",
    "HistoryWindow",
    "InMemoryStorage",
    "MemoryStore",
    "MessageEmbedding",
    "MessageHit",
    "PostgresStorage",
    "ResumeOutcome",
    "RunRecord",
    "RunStateError",
    "RunStatus",
    "SQLStorage",
    "SQLiteStorage",
    "SchemaMissingError",
    "SchemaVersionError",
    "ScoreRecord",
    "ScoreStats",
    "ScoreStore",
    "SessionContext",
    "SessionOwnershipError",
    "SessionRecord",
    "SessionState",
    "SessionStore",
    "SpanRecord",
    "StateConflict",
    "StateDelta",
    "StateNotSerializableError",
    "StateTooLargeError",
    "StateUpdateError",
    "StepRecord",
    "Storage",
    "TraceMetricsRow",
    "TraceStore",
    "TraceSummary",
    "UserMemory",
    "WorkflowRunRecord",
    "WorkflowStore",
    "keep_alive",
    "may_act",
    "open_storage",
    "shared_storage",
    "with_url_option",
]

_LAZY = {
    "ClickHouseStorage": ".clickhouse",
    "CompositeStorage": ".composite",
    "InMemoryStorage": ".inmemory",
    "keep_alive": ".lease",
    "PostgresStorage": ".sql",
    "SQLiteStorage": ".sql",
    "SQLStorage": ".sql",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'vivace.storage' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def open_storage(url: str, **options: Any) -> Storage:
    """A storage from a URL: ``sqlite:///path.db`` (``sqlite:///:memory:``),
    ``postgresql://user:pw@host/db``, ``memory://`` or ``clickhouse://host:8123/db`` (the
    traces and scores domains only: :class:`ClickHouseStorage`).

    ``options`` go to the backend's constructor (e.g. ``run_lease=30``,
    ``create_tables=False``) and win over the same options in the URL's query:
    ``?run_lease=30`` (SQLite and PostgreSQL), ``?schema=name`` (PostgreSQL),
    ``?allow_foreign_tables=1`` and ``?busy_timeout=10`` (SQLite).
    """
    from ..errors import UserError

    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        from .sql import SQLiteStorage, sqlite_url_options

        rest = url.split(":", 1)[1]
        if not rest.startswith("///"):
            raise UserError(f"SQLite URLs look like sqlite:///path.db, not {url!r}")
        path, url_options = sqlite_url_options("sqlite:" + rest)
        return SQLiteStorage(path, **{**url_options, **options})
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        from .sql import PostgresStorage

        return PostgresStorage(url, **options)
    if scheme in ("memory", "inmemory"):
        from .inmemory import InMemoryStorage

        return InMemoryStorage(**options)
    if scheme in ("clickhouse", "clickhouses"):
        return _clickhouse(url, options)
    raise UserError(
        f"no storage backend for {url!r} (use sqlite:///..., postgresql://... or memory://)"
    )


def _clickhouse(url: str, options: dict[str, Any]) -> Storage:
    """``clickhouse://user:password@host:8123/database`` (``clickhouses://``: HTTPS)."""
    from urllib.parse import unquote, urlsplit

    from .clickhouse import ClickHouseStorage

    u = urlsplit(url)
    http = "https" if u.scheme == "clickhouses" else "http"
    port = f":{u.port}" if u.port else ""
    kwargs: dict[str, Any] = {"database": u.path.strip("/") or "vivace"}
    if u.username:
        kwargs["user"] = unquote(u.username)
    if u.password:
        kwargs["password"] = unquote(u.password)
    return ClickHouseStorage(f"{http}://{u.hostname}{port}", **{**kwargs, **options})


_SHARED: dict[str, Storage] = {}


def shared_storage(spec: Storage | str) -> Storage:
    """The process-wide storage for ``spec``: a URL is opened once per process and the same
    object is returned to every caller (agents, the server, the CLI), so one database file
    never gets two engines in one process. A :class:`Storage` object is returned as is."""
    if not isinstance(spec, str):
        return spec
    storage = _SHARED.get(spec)
    if storage is None:
        storage = _SHARED[spec] = open_storage(spec)
    return storage


def with_url_option(url: str, name: str, value: Any) -> str:
    """``url`` with the query option ``name=value`` set (replacing a value already there),
    e.g. ``with_url_option("sqlite:///v.db", "run_lease", 30)``."""
    from urllib.parse import parse_qsl, urlencode

    base, _, query = url.partition("?")
    items = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != name]
    items.append((name, str(value)))
    return f"{base}?{urlencode(items)}"
