"""SQLite and PostgreSQL storage on SQLAlchemy 2 Core.

One schema and one set of Core statements for both databases; the differences are the
upsert dialect, how a write transaction takes its lock (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL), the driver (the standard library's sqlite3 with each
write transaction run whole in a worker thread; asyncpg natively async) and vector search
(pgvector on PostgreSQL when the extension is available, an exact cosine scan otherwise).
The run loop's seam (``begin_run``/``start_run``/``finish_run``) runs as SQL text generated
from the same schema on the driver connections (``_pgfast``: one statement per call on
asyncpg; ``_sqlitefast``: one transaction per call on sqlite3). Every query is parameterized.

This module holds the engines, setup and migrations; each domain's statements live in its own
module: ``_sql_sessions`` (sessions and runs), ``_sql_memory`` (memory and vectors) and
``_sql_domains`` (workflow snapshots, traces, scores, run events).
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from ..errors import StorageError, UserError, VivaceError
from . import _logic as L
from . import schema as S
from ._sql_domains import _SQLEvents, _SQLScores, _SQLTraces, _SQLWorkflows
from ._sql_memory import _PgVector, _SQLMemory
from ._sql_sessions import _SQLSessions
from .base import Storage
from .errors import CorruptDatabaseError, SchemaMissingError, SchemaVersionError

__all__ = ["PostgresStorage", "SQLStorage", "SQLiteStorage"]

_T = TypeVar("_T")

_CORRUPT_MARKERS = ("file is not a database", "malformed", "not a database", "file is encrypted")


class _InlineConn:
    """A sync SQLite connection behind the async ``execute`` the domain code awaits.

    Statements run inline (SQLite work on the page cache takes microseconds); the steps that
    can wait - taking the write lock (``busy_timeout``) and committing (a WAL checkpoint may
    fsync) - run in the storage's worker thread, so the event loop never blocks on them.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if parameters is None:
            return self.conn.execute(statement)
        return self.conn.execute(statement, parameters)

    async def run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:
        return fn(self.conn)


class SQLStorage(Storage):
    """Storage in a SQL database; see :class:`SQLiteStorage` and :class:`PostgresStorage`.

    Tables are created (or upgraded) on first use unless ``create_tables``/``migrate`` is off.
    """

    dialect_name: str = ""

    def __init__(
        self,
        url: str,
        *,
        create_tables: bool = True,
        migrate: bool = True,
        max_state_bytes: int = L.DEFAULT_MAX_STATE_BYTES,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.create_tables = create_tables
        self.migrate = migrate
        self.max_state_bytes = max_state_bytes
        self._engine_options = dict(engine_options or {})
        self._engine: Any = None
        self._ready_flag = False
        self._setup_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.pgvector = False
        self._vector_type = _PgVector()
        self.sessions = _SQLSessions(self)
        self.memory = _SQLMemory(self)
        self.workflows = _SQLWorkflows(self)
        self.traces = _SQLTraces(self)
        self.scores = _SQLScores(self)
        self.events = _SQLEvents(self)

    # -- engine and transactions ---------------------------------------------------------------

    def _make_engine(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect_name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)

    def _translate(self, exc: BaseException) -> VivaceError:
        text = str(exc)
        if self.dialect_name == "sqlite" and any(m in text for m in _CORRUPT_MARKERS):
            return CorruptDatabaseError(
                f"{self._describe()} is not a usable SQLite database: {_first_line(text)}",
                url=self._describe(),
            )
        return StorageError(
            f"{self.dialect_name} storage error: {_first_line(text)}", url=self._describe()
        )

    def _describe(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _get_engine(self) -> Any:
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    async def _ready(self) -> None:
        if self._ready_flag:
            return
        loop = asyncio.get_running_loop()
        if self._setup_lock is None or self._setup_lock[0] is not loop:
            self._setup_lock = (loop, asyncio.Lock())
        async with self._setup_lock[1]:
            if not self._ready_flag:
                try:
                    await self._setup_schema(self._get_engine())
                except VivaceError:
                    raise
                except (sa.exc.SQLAlchemyError, OSError) as exc:
                    raise self._translate(exc) from exc
                self._ready_flag = True

    def _tx(self, write: bool) -> AbstractAsyncContextManager[Any]:
        """A transaction: ``BEGIN IMMEDIATE`` for SQLite writes, READ COMMITTED on PostgreSQL
        (writes lock the rows they change with ``SELECT ... FOR UPDATE``)."""
        return self._tx_impl(write)

    @asynccontextmanager
    async def _tx_impl(self, write: bool) -> AsyncIterator[Any]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    async def run_sync(self, fn: Callable[[sa.Connection], _T], *, setup: bool = True) -> _T:
        """Run ``fn(connection)`` in one transaction on a plain SQLAlchemy connection (for
        tooling, tests and maintenance). ``setup=False`` skips creating/upgrading tables."""
        if setup:
            await self._ready()
        try:
            return await self._run_sync(fn)
        except VivaceError:
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._translate(exc) from exc

    async def _run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:  # pragma: no cover
        raise NotImplementedError

    async def _write(self, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body(connection)`` as one write transaction (in SQLite's worker thread: one
        hop for the whole transaction)."""
        return await self.run_sync(body)

    async def _read(self, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body(connection)`` as one read transaction."""
        async with self._tx(False) as conn:
            return await conn.run_sync(body)

    async def setup(self) -> None:
        """Connect, validate the database and create/upgrade the tables now."""
        await self._ready()

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        self._ready_flag = False
        if engine is not None:
            await self._dispose(engine)

    async def _dispose(self, engine: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- schema -----------------------------------------------------------------------------------

    async def _setup_schema(self, engine: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_and_create(self, conn: sa.Connection) -> None:
        insp = sa.inspect(conn)
        # the named schema, not the dialect's default (fixed at the first connect, possibly
        # before the schema existed: it would find another installation's tables in public)
        where = getattr(self, "schema", None)
        tables = set(insp.get_table_names(schema=where))
        ours = tables & S.VIVACE_TABLES
        if S.schema_version.name not in tables:
            if ours:
                raise CorruptDatabaseError(
                    f"{self._describe()} has Vivace tables but no schema version table",
                    url=self._describe(),
                )
            if not self.create_tables:
                raise SchemaMissingError(
                    f"{self._describe()} has no Vivace tables and create_tables is off",
                    url=self._describe(),
                )
            # none of our tables exist in this schema (a check by name would also see
            # tables of another installation further along the search path)
            S.metadata.create_all(conn, checkfirst=False)
            conn.execute(
                S.schema_version.insert().values(version=S.SCHEMA_VERSION, applied_at=time.time())
            )
            return
        cols = {c["name"] for c in insp.get_columns(S.schema_version.name, schema=where)}
        if not {"version", "applied_at"} <= cols:
            raise CorruptDatabaseError(
                f"{self._describe()}: {S.schema_version.name} is not Vivace's", url=self._describe()
            )
        version = conn.execute(sa.select(sa.func.max(S.schema_version.c.version))).scalar()
        if version is None:
            raise CorruptDatabaseError(
                f"{self._describe()}: the schema version table is empty", url=self._describe()
            )
        if version > S.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self._describe()} has schema version {version}, newer than this Vivace "
                f"({S.SCHEMA_VERSION}); upgrade Vivace. Nothing was changed.",
                found=version,
                supported=S.SCHEMA_VERSION,
            )
        if version < S.SCHEMA_VERSION:
            if not self.migrate:
                raise SchemaVersionError(
                    f"{self._describe()} has schema version {version}; this Vivace needs "
                    f"{S.SCHEMA_VERSION} and migrate is off",
                    found=version,
                    supported=S.SCHEMA_VERSION,
                )
            for v in range(version + 1, S.SCHEMA_VERSION + 1):
                S.MIGRATIONS[v](conn)
                conn.execute(S.schema_version.insert().values(version=v, applied_at=time.time()))

    async def schema_version(self) -> int:
        """The schema version stored in the database."""
        async with self._tx(False) as conn:
            v = (await conn.execute(sa.select(sa.func.max(S.schema_version.c.version)))).scalar()
        return int(v or 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()!r})"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


class SQLiteStorage(SQLStorage):
    """SQLite storage in a file (WAL mode), the embedded default.

    ``SQLiteStorage("vivace.db")``; ``":memory:"`` keeps a private in-process database.
    Writers serialize with ``BEGIN IMMEDIATE`` (waiting up to ``busy_timeout`` seconds, in a
    worker thread). Uses the standard library's sqlite3 through SQLAlchemy.
    """

    dialect_name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] = ".vivace/vivace.db",
        *,
        busy_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        if self.path.startswith(("sqlite:", "sqlite+pysqlite:", "sqlite+aiosqlite:")):
            self.path = sa.engine.make_url(self.path).database or ":memory:"
        self._executor: Any = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(f"sqlite:///{self.path}", **kwargs)
        from ._sqlitefast import LiteSessions

        self.sessions = LiteSessions(self)

    def _make_engine(self) -> sa.Engine:
        from concurrent.futures import ThreadPoolExecutor

        from sqlalchemy import event

        opts: dict[str, Any] = {
            "connect_args": {"timeout": self.busy_timeout, "check_same_thread": False},
        }
        if self.path == ":memory:":
            opts["poolclass"] = sa.pool.StaticPool
        else:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            opts["pool_size"] = 8
        opts.update(self._engine_options)
        engine = sa.create_engine(self.url, **opts)
        busy_ms = int(self.busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            begin = conn.get_execution_options().get("vivace_begin", "BEGIN")
            if begin:  # "" = autocommit (statements that cannot run inside a transaction)
                conn.exec_driver_sql(begin)

        # one thread at a time: SQLite has one writer anyway, and a StaticPool connection
        # (":memory:") must not be used from two threads at once
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vivace-sqlite")
        return engine

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        self._get_engine()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _open(self, write: bool) -> tuple[sa.Connection, sa.RootTransaction]:
        conn = self._get_engine().connect()
        try:
            conn = conn.execution_options(vivace_begin="BEGIN IMMEDIATE" if write else "BEGIN")
            return conn, conn.begin()
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def _end(conn: sa.Connection, tx: sa.RootTransaction, commit: bool) -> None:
        try:
            if commit:
                tx.commit()
            else:
                tx.rollback()
        finally:
            conn.close()

    def _writer_lock(self) -> asyncio.Lock:
        """One write transaction at a time per process and event loop.

        SQLite has a single writer anyway; serializing here means the worker thread only
        ever waits for *other processes*, never for a transaction of this process whose
        commit would be queued behind it.
        """
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def _tx_impl(self, write: bool) -> AsyncIterator[Any]:
        await self._ready()
        shared = self.path == ":memory:"  # one connection: readers queue with writers
        try:
            if write or shared:
                async with self._writer_lock():
                    # waiting for the write lock happens in the worker thread
                    conn, tx = await self._in_thread(self._open, write)
                    try:
                        yield _InlineConn(conn)
                    except BaseException:
                        self._end(conn, tx, False)
                        raise
                    # a commit may checkpoint the WAL (fsync): not on the event loop
                    await self._in_thread(self._end, conn, tx, True)
            else:  # WAL readers never wait for writers: run inline
                conn, tx = self._open(False)
                try:
                    yield _InlineConn(conn)
                except BaseException:
                    self._end(conn, tx, False)
                    raise
                self._end(conn, tx, True)
        except VivaceError:
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._translate(exc) from exc

    async def _run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:
        def work() -> _T:
            conn, tx = self._open(True)
            try:
                out = fn(conn)
            except BaseException:
                self._end(conn, tx, False)
                raise
            self._end(conn, tx, True)
            return out

        async with self._writer_lock():
            return await self._in_thread(work)

    async def _setup_schema(self, engine: Any) -> None:
        await self._in_thread(self._setup_sync)

    def _setup_sync(self) -> None:
        engine = self._get_engine()
        with engine.connect() as conn:
            # reading the catalogue fails on a file that is not SQLite (nothing is written)
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
            conn.rollback()
            conn = conn.execution_options(vivace_begin="BEGIN IMMEDIATE")
            with conn.begin():
                self._check_and_create(conn)
            if self.path != ":memory:":  # only once the file is known to be ours
                conn = conn.execution_options(vivace_begin="")
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                conn.commit()

    async def _dispose(self, engine: Any) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, engine.dispose)
            executor.shutdown(wait=False)
        else:
            engine.dispose()


class PostgresStorage(SQLStorage):
    """PostgreSQL storage (asyncpg). ``PostgresStorage("postgresql://user:pw@host/db")``.

    ``schema`` keeps Vivace's tables in their own PostgreSQL schema (created if missing).
    pgvector is enabled for message search when the extension can be created.
    """

    dialect_name = "postgresql"

    def __init__(self, url: str, *, schema: str | None = None, **kwargs: Any) -> None:
        u = sa.engine.make_url(url)
        if u.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
            u = u.set(drivername="postgresql+asyncpg")
        else:
            raise UserError(f"PostgresStorage needs a postgresql:// URL, not {u.drivername}://")
        if schema is None:
            schema = u.query.get("schema")  # type: ignore[assignment]
            if schema is not None:
                u = u.difference_update_query(["schema"])
        if schema is not None and not schema.replace("_", "").isalnum():
            raise UserError(f"invalid PostgreSQL schema name: {schema!r}")
        self.schema = schema
        super().__init__(u.render_as_string(hide_password=False), **kwargs)
        from ._pgfast import PgSessions

        self.sessions = PgSessions(self)

    def _make_engine(self) -> Any:
        from sqlalchemy.ext.asyncio import create_async_engine

        # every use of a connection ends in COMMIT or ROLLBACK: no reset round trip needed
        opts: dict[str, Any] = {"pool_size": 10, "max_overflow": 10, "pool_reset_on_return": None}
        if self.schema:
            opts["connect_args"] = {"server_settings": {"search_path": f'"{self.schema}",public'}}
        opts.update(self._engine_options)
        return create_async_engine(self.url, **opts)

    @asynccontextmanager
    async def _tx_impl(self, write: bool) -> AsyncIterator[Any]:
        await self._ready()
        try:
            async with self._get_engine().connect() as conn, conn.begin():
                yield conn
        except VivaceError:
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._translate(exc) from exc

    async def _run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:
        async with self._get_engine().connect() as conn, conn.begin():
            return await conn.run_sync(fn)

    async def _dispose(self, engine: Any) -> None:
        await engine.dispose()

    async def _setup_schema(self, engine: Any) -> None:
        async with engine.connect() as conn, conn.begin():
            # one process at a time creates/upgrades (DDL is transactional here)
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7262110530)"))
            if self.schema:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.run_sync(self._check_and_create)
            await self._pg_vector(conn)

    async def _pg_vector(self, conn: Any) -> None:
        find = sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        ext_schema = (await conn.execute(find)).scalar()
        if ext_schema is None:
            try:
                async with conn.begin_nested():
                    await conn.exec_driver_sql(
                        "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"
                    )
                ext_schema = (await conn.execute(find)).scalar()
            except sa.exc.DBAPIError:
                ext_schema = None
        if ext_schema is None:
            self.pgvector = False
            return
        self._vector_type = _PgVector(str(ext_schema))
        has_col = (
            await conn.execute(
                sa.text(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = :t AND column_name = 'embedding_vec'"
                ),
                {"t": S.message_embeddings.name},
            )
        ).first()
        if not has_col:
            await conn.exec_driver_sql(
                f"ALTER TABLE {S.message_embeddings.name} ADD COLUMN embedding_vec "
                f"{self._vector_type.get_col_spec()}"
            )
        self.pgvector = True
