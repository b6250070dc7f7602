"""SQLite and PostgreSQL storage on SQLAlchemy 2 Core.

One schema and one set of statements for both databases; the differences (upsert dialect,
locking, driver, vector search) live in :mod:`._engine`. Each domain has its own module with
its tables: ``sessions`` (plus the seam's fast paths ``_sessions_sqlite`` and
``_sessions_pg``), ``memory``, ``workflows``, ``traces``, ``scores``, ``events``; ``schema``
holds the shared metadata and migrations. Every query is parameterized.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa

from ...errors import UserError
from .. import _logic as L
from ..base import Storage
from ._engine import Engine, PostgresEngine, SQLiteEngine
from ._sessions_pg import PgSessions
from ._sessions_sqlite import LiteSessions
from .events import SQLEvents
from .memory import SQLMemory
from .scores import SQLScores
from .sessions import SQLSessions
from .traces import SQLTraces
from .workflows import SQLWorkflows

__all__ = ["PostgresStorage", "SQLStorage", "SQLiteStorage", "sqlite_url_options"]

_T = TypeVar("_T")


def _flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise UserError(f"URL option {name} must be true or false, not {value!r}")


def sqlite_url_options(url: str) -> tuple[str, dict[str, Any]]:
    """The path and the options of a ``sqlite:///path.db?run_lease=30`` URL.

    Options: ``run_lease`` (seconds), ``busy_timeout`` (seconds), ``allow_foreign_tables``."""
    u = sa.engine.make_url(url)
    options: dict[str, Any] = {}
    for name, value in u.query.items():
        text = value if isinstance(value, str) else value[-1]
        if name == "run_lease":
            options[name] = L.check_lease(text, "run_lease")
        elif name == "busy_timeout":
            options[name] = L.check_lease(text, "busy_timeout")
        elif name == "allow_foreign_tables":
            options[name] = _flag(name, text)
        else:
            raise UserError(
                f"unknown SQLite URL option {name!r} (known: run_lease, busy_timeout, "
                "allow_foreign_tables)"
            )
    return u.database or ":memory:", options


class SQLStorage(Storage):
    """Storage in a SQL database; see :class:`SQLiteStorage` and :class:`PostgresStorage`.

    Tables are created (or upgraded) on first use unless ``create_tables``/``migrate`` is off.
    """

    dialect_name: str = ""
    engine: Engine

    def _wire(self, engine: Engine, sessions: SQLSessions) -> None:
        self.engine = engine
        self.sessions = sessions
        self.memory = SQLMemory(engine)
        self.workflows = SQLWorkflows(engine)
        self.traces = SQLTraces(engine)
        self.scores = SQLScores(engine)
        self.events = SQLEvents(engine)

    @property
    def url(self) -> str:
        return self.engine.url

    @property
    def create_tables(self) -> bool:
        return self.engine.create_tables

    @property
    def migrate(self) -> bool:
        return self.engine.migrate

    @property
    def max_state_bytes(self) -> int:
        return self.sessions.max_state_bytes

    @property
    def pgvector(self) -> bool:
        """Whether message search runs in pgvector (PostgreSQL with the extension)."""
        return self.engine.pgvector

    async def setup(self) -> None:
        """Connect, validate the database and create/upgrade the tables now."""
        await self.engine.ready()

    async def close(self) -> None:
        close = getattr(self.workflows, "close", None)
        if close is not None:  # the workflow domain's own SQLite connections
            await close()
        await self.engine.close()

    async def run_sync(self, fn: Callable[[sa.Connection], _T], *, setup: bool = True) -> _T:
        """Run ``fn(connection)`` in one transaction on a plain SQLAlchemy connection (for
        tooling, tests and maintenance). ``setup=False`` skips creating/upgrading tables."""
        return await self.engine.run_sync(fn, setup=setup)

    async def schema_version(self) -> int:
        """The schema version stored in the database."""
        return await self.engine.schema_version()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine.describe()!r})"


class SQLiteStorage(SQLStorage):
    """SQLite storage in a file (WAL mode), the embedded default.

    ``SQLiteStorage("vivace.db")``; ``":memory:"`` keeps a private in-process database; a
    ``sqlite:///path.db?run_lease=30`` URL works too. Writers serialize with ``BEGIN
    IMMEDIATE`` (waiting up to ``busy_timeout`` seconds, in a worker thread).

    A file that already holds other programs' tables (and no Vivace tables) is refused
    (:class:`~vivace.storage.CorruptDatabaseError`, nothing changed) unless
    ``allow_foreign_tables=True``: Vivace then adds its ``vivace_*`` tables and switches the
    file to WAL mode for good. ``run_lease``: seconds a running run stays ``running``
    without a heartbeat (default 60).
    """

    dialect_name = "sqlite"
    engine: SQLiteEngine

    def __init__(
        self,
        path: str | os.PathLike[str] = ".vivace/vivace.db",
        *,
        busy_timeout: float | None = None,
        allow_foreign_tables: bool | None = None,
        run_lease: float | None = None,
        create_tables: bool = True,
        migrate: bool = True,
        max_state_bytes: int = L.DEFAULT_MAX_STATE_BYTES,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        p = os.fspath(path)
        url_opts: dict[str, Any] = {}
        if p.startswith(("sqlite:", "sqlite+pysqlite:", "sqlite+aiosqlite:")):
            p, url_opts = sqlite_url_options(p)
        self.path = p
        engine = SQLiteEngine(
            p,
            busy_timeout=busy_timeout
            if busy_timeout is not None
            else url_opts.get("busy_timeout", 30.0),
            allow_foreign_tables=allow_foreign_tables
            if allow_foreign_tables is not None
            else url_opts.get("allow_foreign_tables", False),
            create_tables=create_tables,
            migrate=migrate,
            engine_options=engine_options,
        )
        lease = L.check_lease(
            run_lease if run_lease is not None else url_opts.get("run_lease", L.DEFAULT_LEASE)
        )
        self._wire(engine, LiteSessions(engine, max_state_bytes=max_state_bytes, run_lease=lease))

    @property
    def busy_timeout(self) -> float:
        return self.engine.busy_timeout


def _pool_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise UserError(f"pool_size must be a whole number of connections >= 1, not {text!r}")
    return size


class PostgresStorage(SQLStorage):
    """PostgreSQL storage (asyncpg). ``PostgresStorage("postgresql://user:pw@host/db")``.

    ``schema`` (or ``?schema=`` in the URL) keeps Vivace's tables in their own PostgreSQL
    schema (created if missing). ``run_lease`` (or ``?run_lease=``): seconds a running run
    stays ``running`` without a heartbeat (default 60). ``?pool_size=`` (or
    ``engine_options={"pool_size": n}``): connections each process keeps (default 20, no
    overflow). Other URL options go to asyncpg. pgvector is enabled for message search when
    the extension can be created.
    """

    dialect_name = "postgresql"
    engine: PostgresEngine

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        run_lease: float | None = None,
        create_tables: bool = True,
        migrate: bool = True,
        max_state_bytes: int = L.DEFAULT_MAX_STATE_BYTES,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        u = sa.engine.make_url(url)
        if u.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
            u = u.set(drivername="postgresql+asyncpg")
        else:
            raise UserError(f"PostgresStorage needs a postgresql:// URL, not {u.drivername}://")
        query = {k: (v if isinstance(v, str) else v[-1]) for k, v in u.query.items()}
        if schema is None:
            schema = query.get("schema")
        if run_lease is None and "run_lease" in query:
            run_lease = L.check_lease(query["run_lease"])
        if "pool_size" in query:  # connections kept per process (engine_options win)
            engine_options = {"pool_size": _pool_size(query["pool_size"]), **(engine_options or {})}
        u = u.difference_update_query(["schema", "run_lease", "pool_size"])
        engine = PostgresEngine(
            u.render_as_string(hide_password=False),
            schema=schema,
            create_tables=create_tables,
            migrate=migrate,
            engine_options=engine_options,
        )
        lease = L.check_lease(run_lease if run_lease is not None else L.DEFAULT_LEASE)
        self._wire(engine, PgSessions(engine, max_state_bytes=max_state_bytes, run_lease=lease))

    @property
    def schema(self) -> str | None:
        return self.engine.schema
