"""SQLite and PostgreSQL storage on SQLAlchemy 2 Core.

One schema and one set of Core statements for both databases; the differences are the
upsert dialect, how a write transaction takes its lock (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL), the driver (the standard library's sqlite3 with each
write transaction run whole in a worker thread; asyncpg natively async) and vector search
(pgvector on PostgreSQL when the extension is available, an exact cosine scan otherwise).
The run loop's seam (``begin_run``/``start_run``/``finish_run``) runs as SQL text generated
from the same schema on the driver connections (``_pgfast``: one statement per call on
asyncpg; ``_sqlitefast``: one transaction per call on sqlite3). Every query is parameterized.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from ..errors import NotFound, StorageError, UserError, VivaceError
from ..messages import Message
from . import _logic as L
from . import schema as S
from ._vec import cosine, norm, pack, unpack, vector_literal
from .base import (
    CANCEL_KEY,
    EventStore,
    MemoryStore,
    MessageEmbedding,
    Scope,
    ScoreStore,
    SessionStore,
    Storage,
    TraceStore,
    WorkflowStore,
    _cancel_flagged,
)
from .errors import (
    CorruptDatabaseError,
    RunStateError,
    SchemaMissingError,
    SchemaVersionError,
    SessionOwnershipError,
)
from .inmemory import _rank_memories
from .records import (
    HistoryWindow,
    MessageHit,
    RunRecord,
    ScoreRecord,
    SessionContext,
    SessionRecord,
    SpanRecord,
    UserMemory,
    WorkflowSnapshot,
)

__all__ = ["PostgresStorage", "SQLStorage", "SQLiteStorage"]

_T = TypeVar("_T")
_sessions = S.sessions
_runs = S.runs

_CORRUPT_MARKERS = ("file is not a database", "malformed", "not a database", "file is encrypted")


class _PgVector(sa.types.UserDefinedType[Any]):
    """pgvector's ``vector`` type, qualified by the schema the extension lives in."""

    cache_ok = True

    def __init__(self, schema: str = "public") -> None:
        self.schema = schema

    def get_col_spec(self, **kw: Any) -> str:
        return f'"{self.schema}".vector'

    def cosine_operator(self) -> str:
        return f'OPERATOR("{self.schema}".<=>)'


def _vec_param(name: str, vtype: _PgVector) -> sa.ColumnElement[Any]:
    return sa.cast(sa.bindparam(name, type_=sa.Text), vtype)


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


# -- sessions and runs -------------------------------------------------------------------------


def _session_from_row(row: Any) -> SessionRecord:
    m = row._mapping
    return SessionRecord(
        session_id=m["session_id"],
        agent_id=m["agent_id"],
        user_id=m["user_id"],
        name=m["name"],
        state=json.loads(m["state"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=json.loads(m["metadata"]),
    )


def _status_filter(statuses: Collection[str], now: float) -> sa.ColumnElement[bool]:
    """SQL for "effective status in statuses" (a running run past its lease is incomplete)."""
    c = _runs.c
    plain = [s for s in statuses if s not in ("running", "incomplete")]
    conds: list[sa.ColumnElement[bool]] = []
    if plain:
        conds.append(c.status.in_(plain))
    if "incomplete" in statuses:
        conds.append(c.status == "incomplete")
        conds.append(sa.and_(c.status == "running", c.lease_expires_at < now))
    if "running" in statuses:
        conds.append(
            sa.and_(
                c.status == "running",
                sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at >= now),
            )
        )
    return sa.or_(*conds) if conds else sa.false()


_RUN_UPDATE_COLS = (
    "agent_id",
    "user_id",
    "status",
    "input",
    "messages",
    "output",
    "usage",
    "error",
    "paused",
    "metadata",
)


_RUN_SET_COLS = (*_RUN_UPDATE_COLS, "updated_at", "lease_expires_at")
_RUN_ALL_COLS = ("run_id", "session_id", "created_at", *_RUN_SET_COLS)
_SESSION_NEW_COLS = ("session_id", "agent_id", "user_id", "created_at", "updated_at")


class _HotStatements:
    """The run loop's statements, built once with bind parameters (SQLAlchemy then reuses
    their compiled form; building Core statements per call costs more than running them)."""

    def __init__(self, owner: SQLStorage) -> None:
        b = sa.bindparam
        ins = owner._insert(_sessions).values(
            {c: b(c) for c in _SESSION_NEW_COLS} | {"name": None, "state": "{}", "metadata": "{}"}
        )
        self.session_upsert = ins.on_conflict_do_update(
            index_elements=[_sessions.c.session_id],
            set_={"updated_at": ins.excluded.updated_at},
            where=_sessions.c.user_id.is_not_distinct_from(ins.excluded.user_id),
        ).returning(*_sessions.c)
        self.session_insert = ins.on_conflict_do_nothing(index_elements=[_sessions.c.session_id])
        self.session_get = sa.select(_sessions).where(_sessions.c.session_id == b("session_id"))
        self.session_lock = (
            sa.select(_sessions.c.user_id, _sessions.c.state)
            .where(_sessions.c.session_id == b("session_id"))
            .with_for_update()
        )
        self.session_touch = (
            sa.update(_sessions)
            .where(_sessions.c.session_id == b("b_session_id"))
            .values(updated_at=b("now"))
        )
        self.session_touch_owned = (
            sa.update(_sessions)
            .where(
                _sessions.c.session_id == b("b_session_id"),
                _sessions.c.user_id.is_not_distinct_from(b("b_user_id")),
            )
            .values(updated_at=b("now"))
            .returning(_sessions.c.state)
        )
        self.session_set_state = (
            sa.update(_sessions)
            .where(_sessions.c.session_id == b("b_session_id"))
            .values(updated_at=b("now"), state=b("new_state"))
        )
        rins = owner._insert(_runs).values({c: b(c) for c in _RUN_ALL_COLS})
        self.run_upsert = rins.on_conflict_do_update(
            index_elements=[_runs.c.run_id],
            set_={k: rins.excluded[k] for k in _RUN_SET_COLS},
            where=_runs.c.session_id == rins.excluded.session_id,
        ).returning(_runs.c.seq)
        self.run_update = (
            sa.update(_runs)
            .where(_runs.c.run_id == b("b_run_id"), _runs.c.session_id == b("b_session_id"))
            .values({k: b(k) for k in _RUN_SET_COLS})
        )
        self.run_get = sa.select(_runs).where(_runs.c.run_id == b("run_id"))
        c = _runs.c
        self.history = (
            sa.select(c.messages, c.run_id)
            .where(
                c.session_id == b("session_id"),
                sa.or_(
                    c.status.in_(b("statuses", expanding=True)),
                    sa.and_(
                        b("with_incomplete"), c.status == "running", c.lease_expires_at < b("now")
                    ),
                ),
            )
            .order_by(c.seq.desc())
            .limit(b("limit"))
        )


class _SQLSessions(SessionStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner
        self._hot: _HotStatements | None = None

    @property
    def _q(self) -> _HotStatements:
        if self._hot is None:
            self._hot = _HotStatements(self._o)
        return self._hot

    # -- helpers --------------------------------------------------------------------------------

    def _history_rows(
        self, conn: sa.Connection, session_id: str, window: HistoryWindow | None, now: float
    ) -> list[Any]:
        if window is None:
            return []
        limit = window.run_limit()
        if "running" in window.statuses:
            q: Any = (
                sa.select(_runs.c.messages, _runs.c.run_id)
                .where(_runs.c.session_id == session_id, _status_filter(window.statuses, now))
                .order_by(_runs.c.seq.desc())
            )
            if limit is not None:
                q = q.limit(limit)
            return list(conn.execute(q).all())
        if limit is None:
            limit = -1 if self._o.dialect_name == "sqlite" else None
        params = {
            "session_id": session_id,
            "statuses": list(window.statuses),
            "with_incomplete": "incomplete" in window.statuses,
            "now": now,
            "limit": limit,
        }
        return list(conn.execute(self._q.history, params).all())

    @staticmethod
    def _window(rows: list[Any], window: HistoryWindow | None) -> tuple[list[Message], list[str]]:
        if window is None:
            return [], []
        msgs, n = L.window_messages([L.parse_messages(r[0]) for r in rows], window)
        return msgs, [r[1] for r in rows[:n]][::-1]

    def _new_session(self, record: RunRecord, now: float) -> dict[str, Any]:
        return {
            "session_id": record.session_id,
            "agent_id": record.agent_id,
            "user_id": record.user_id,
            "created_at": now,
            "updated_at": now,
        }

    def _upsert_run(self, conn: sa.Connection, values: dict[str, Any]) -> None:
        params = {k: values[k] for k in _RUN_ALL_COLS}
        if conn.execute(self._q.run_upsert, params).first() is None:
            raise RunStateError(
                f"run {values['run_id']!r} belongs to another session", run_id=values["run_id"]
            )

    # -- seam -----------------------------------------------------------------------------------

    async def load_context(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        history: HistoryWindow | None = None,
    ) -> SessionContext:
        def body(conn: sa.Connection) -> tuple[Any, list[Any]]:
            row = conn.execute(self._q.session_get, {"session_id": session_id}).first()
            if row is None:
                return None, []
            L.check_owner(session_id, row._mapping["user_id"], user_id)
            return row, self._history_rows(conn, session_id, history, time.time())

        row, rows = await self._o._read(body)
        if row is None:
            return SessionContext.build(None, [])
        msgs, ids = self._window(rows, history)
        return SessionContext.build(_session_from_row(row), msgs, ids)

    def _start(
        self, conn: sa.Connection, record: RunRecord, values: dict[str, Any], lease: float
    ) -> tuple[Any, float]:
        now = time.time()
        row = conn.execute(self._q.session_upsert, self._new_session(record, now)).first()
        if row is None:
            raise SessionOwnershipError(
                f"session {record.session_id!r} belongs to another user",
                session_id=record.session_id,
            )
        values.update(status="running", lease_expires_at=now + lease, updated_at=now)
        self._upsert_run(conn, values)
        return row, now

    async def begin_run(
        self,
        record: RunRecord,
        *,
        history: HistoryWindow | None = None,
        lease: float = L.DEFAULT_LEASE,
    ) -> SessionContext:
        values = L.run_row(record)

        def body(conn: sa.Connection) -> tuple[Any, list[Any], float]:
            # history first: it is read before this run exists
            rows = self._history_rows(conn, record.session_id, history, time.time())
            row, now = self._start(conn, record, values, lease)
            return row, rows, now

        row, rows, now = await self._o._write(body)
        record.status = "running"
        record.lease_expires_at = now + lease
        msgs, ids = self._window(rows, history)
        return SessionContext.build(_session_from_row(row), msgs, ids)

    async def start_run(self, record: RunRecord, *, lease: float = L.DEFAULT_LEASE) -> None:
        values = L.run_row(record)
        _, now = await self._o._write(lambda conn: self._start(conn, record, values, lease))
        record.status = "running"
        record.lease_expires_at = now + lease

    async def heartbeat(self, run_id: str, *, lease: float = L.DEFAULT_LEASE) -> bool:
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.update(_runs)
                .where(_runs.c.run_id == run_id, _runs.c.status == "running")
                .values(lease_expires_at=time.time() + lease)
            )
        return bool(res.rowcount)

    def _lock_session(self, conn: sa.Connection, record: RunRecord, now: float) -> dict[str, Any]:
        """Create the session if missing (race-free), then lock its row; return its state."""
        q, key = self._q.session_lock, {"session_id": record.session_id}
        row = conn.execute(q, key).first()
        if row is None:
            conn.execute(self._q.session_insert, self._new_session(record, now))
            row = conn.execute(q, key).first()
            assert row is not None
        L.check_owner(record.session_id, row[0], record.user_id)
        return json.loads(row[1])

    async def finish_run(
        self,
        record: RunRecord,
        *,
        state_changes: Mapping[str, Any] | None = None,
        state_deletes: Collection[str] = (),
    ) -> dict[str, Any]:
        values = L.run_row(record)
        if state_changes:
            L.dumps(dict(state_changes), "session state")  # fail before the transaction
        max_bytes = self._o.max_state_bytes

        def body(conn: sa.Connection) -> tuple[dict[str, Any], float]:
            now = time.time()
            upd: dict[str, Any] = {"now": now, "b_session_id": record.session_id}
            if not (state_changes or state_deletes):
                # fast path: touch the session (locking its row) if it is this user's
                upd["b_user_id"] = record.user_id
                touched = conn.execute(self._q.session_touch_owned, upd).first()
                if touched is not None:
                    self._write_run(conn, record, values, now)
                    return json.loads(touched[0]), now
            current = self._lock_session(conn, record, now)
            if state_changes or state_deletes:
                state, text = L.merge_state(
                    current, state_changes, state_deletes, max_bytes, record.session_id
                )
                upd["new_state"] = text
                conn.execute(self._q.session_set_state, upd)
            else:
                state = current
                conn.execute(self._q.session_touch, upd)
            self._write_run(conn, record, values, now)
            return state, now

        state, now = await self._o._write(body)
        record.lease_expires_at = None
        record.updated_at = now
        return state

    def _write_run(
        self, conn: sa.Connection, record: RunRecord, values: dict[str, Any], now: float
    ) -> None:
        values.update(lease_expires_at=None, updated_at=now)
        params = {k: values[k] for k in _RUN_SET_COLS}
        params.update(b_run_id=record.run_id, b_session_id=record.session_id)
        if not conn.execute(self._q.run_update, params).rowcount:
            self._upsert_run(conn, values)

    async def resume_run(
        self, run_id: str, *, user_id: str | None = None, lease: float = L.DEFAULT_LEASE
    ) -> RunRecord:
        async with self._o._tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(_runs).where(_runs.c.run_id == run_id).with_for_update()
                )
            ).first()
            if row is None:
                raise NotFound(f"no run {run_id!r}", run_id=run_id)
            m = row._mapping
            L.check_owner(m["session_id"], m["user_id"], user_id)
            if m["status"] != "paused":
                raise RunStateError(f"run {run_id!r} is {m['status']}, not paused", run_id=run_id)
            now = time.time()
            await conn.execute(
                sa.update(_runs)
                .where(_runs.c.run_id == run_id)
                .values(status="running", lease_expires_at=now + lease, updated_at=now)
            )
            d = dict(m)
        d.update(status="running", lease_expires_at=now + lease, updated_at=now)
        return L.run_from_row(d, now)

    # -- cancellation across processes ----------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        c = _runs.c
        async with self._o._tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(c.status, c.lease_expires_at, c.metadata)
                    .where(c.run_id == run_id)
                    .with_for_update()
                )
            ).first()
            if row is None or L.effective_status(row[0], row[1]) != "running":
                return False
            meta = json.loads(row[2] or "{}")
            meta[CANCEL_KEY] = time.time()
            res = await conn.execute(
                sa.update(_runs)
                .where(c.run_id == run_id, c.status == "running")
                .values(metadata=json.dumps(meta))
            )
        return bool(res.rowcount)

    async def cancel_requested(self, run_id: str) -> bool:
        return run_id in await self.cancel_requests((run_id,))

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return set()
        c = _runs.c
        # the LIKE leaves out (nearly) every row that has no request, so the usual answer is
        # an empty result of one index lookup per id
        q = sa.select(c.run_id, c.metadata).where(
            c.run_id.in_(ids), c.status == "running", c.metadata.like(f'%"{CANCEL_KEY}"%')
        )
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return {r[0] for r in rows if _cancel_flagged(r[1])}

    # -- reading / managing ---------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._o._tx(False) as conn:
            row = (await conn.execute(self._q.run_get, {"run_id": run_id})).first()
        return L.run_from_row(row._mapping) if row is not None else None

    async def list_runs(
        self, session_id: str, *, statuses: Collection[str] | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        now = time.time()
        q = sa.select(_runs).where(_runs.c.session_id == session_id)
        if statuses is not None:
            q = q.where(_status_filter(statuses, now))
        if limit is not None:
            q = q.order_by(_runs.c.seq.desc()).limit(limit)
        else:
            q = q.order_by(_runs.c.seq)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = [L.run_from_row(r._mapping, now) for r in rows]
        if limit is not None:
            out.reverse()
        return out

    async def get_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> SessionRecord | None:
        async with self._o._tx(False) as conn:
            row = (
                await conn.execute(sa.select(_sessions).where(_sessions.c.session_id == session_id))
            ).first()
        if row is None:
            return None
        if user_id is not None:
            L.check_owner(session_id, row._mapping["user_id"], user_id)
        return _session_from_row(row)

    async def create_session(self, record: SessionRecord) -> SessionRecord:
        state = L.dumps(record.state or {}, "session state")
        L.check_state_size(state, self._o.max_state_bytes, record.session_id)
        meta = L.dumps(record.metadata or {}, "session metadata")
        async with self._o._tx(True) as conn:
            await conn.execute(
                self._o._insert(_sessions)
                .values(
                    session_id=record.session_id,
                    agent_id=record.agent_id,
                    user_id=record.user_id,
                    name=record.name,
                    state=state,
                    metadata=meta,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                )
                .on_conflict_do_nothing(index_elements=[_sessions.c.session_id])
            )
            row = (
                await conn.execute(
                    sa.select(_sessions).where(_sessions.c.session_id == record.session_id)
                )
            ).first()
            assert row is not None
            L.check_owner(record.session_id, row._mapping["user_id"], record.user_id)
        return _session_from_row(row)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SessionRecord]:
        q = sa.select(_sessions)
        if agent_id is not None:
            q = q.where(_sessions.c.agent_id == agent_id)
        if user_id is not None:
            q = q.where(_sessions.c.user_id == user_id)
        q = q.order_by(_sessions.c.updated_at.desc(), _sessions.c.session_id.desc())
        q = q.limit(limit).offset(offset)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [_session_from_row(r) for r in rows]

    async def _require(self, conn: Any, session_id: str, user_id: str | None) -> Any:
        row = (
            await conn.execute(
                sa.select(_sessions).where(_sessions.c.session_id == session_id).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no session {session_id!r}", session_id=session_id)
        if user_id is not None:
            L.check_owner(session_id, row._mapping["user_id"], user_id)
        return row

    async def rename_session(
        self, session_id: str, name: str, *, user_id: str | None = None
    ) -> SessionRecord:
        async with self._o._tx(True) as conn:
            row = await self._require(conn, session_id, user_id)
            now = time.time()
            await conn.execute(
                sa.update(_sessions)
                .where(_sessions.c.session_id == session_id)
                .values(name=name, updated_at=now)
            )
        rec = _session_from_row(row)
        rec.name, rec.updated_at = name, now
        return rec

    async def update_state(
        self,
        session_id: str,
        *,
        changes: Mapping[str, Any] | None = None,
        deletes: Collection[str] = (),
        user_id: str | None = None,
    ) -> dict[str, Any]:
        async with self._o._tx(True) as conn:
            row = await self._require(conn, session_id, user_id)
            state, text = L.merge_state(
                json.loads(row._mapping["state"]),
                changes,
                deletes,
                self._o.max_state_bytes,
                session_id,
            )
            await conn.execute(
                sa.update(_sessions)
                .where(_sessions.c.session_id == session_id)
                .values(state=text, updated_at=time.time())
            )
        return state

    async def delete_session(self, session_id: str, *, user_id: str | None = None) -> bool:
        async with self._o._tx(True) as conn:
            row = (
                await conn.execute(
                    sa.select(_sessions.c.user_id)
                    .where(_sessions.c.session_id == session_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return False
            if user_id is not None:
                L.check_owner(session_id, row[0], user_id)
            await self._delete_sessions(conn, [session_id])
        return True

    async def _delete_sessions(self, conn: Any, ids: Sequence[str]) -> None:
        for chunk in _chunks(ids, 500):
            await conn.execute(sa.delete(_runs).where(_runs.c.session_id.in_(chunk)))
            await conn.execute(
                sa.delete(S.message_embeddings).where(S.message_embeddings.c.session_id.in_(chunk))
            )
            await conn.execute(
                sa.delete(S.working_memory).where(
                    S.working_memory.c.scope.in_(("session", "summary")),
                    S.working_memory.c.owner_id.in_(chunk),
                )
            )
            await conn.execute(sa.delete(_sessions).where(_sessions.c.session_id.in_(chunk)))

    async def prune_runs(self, before: float) -> int:
        now = time.time()
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.delete(_runs).where(
                    _runs.c.updated_at < before,
                    sa.not_(_status_filter(("running",), now)),
                )
            )
        return int(res.rowcount or 0)

    async def prune_sessions(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(_sessions.c.session_id).where(_sessions.c.updated_at < before)
                    )
                )
                .scalars()
                .all()
            )
            await self._delete_sessions(conn, ids)
        return len(ids)


def _chunks(items: Sequence[str], n: int) -> list[Sequence[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


# -- memory -----------------------------------------------------------------------------------

_wm = S.working_memory
_um = S.user_memories
_me = S.message_embeddings


def _memory_from_row(m: Any) -> UserMemory:
    return UserMemory(
        memory_id=m["memory_id"],
        user_id=m["user_id"],
        content=m["content"],
        agent_id=m["agent_id"],
        topics=json.loads(m["topics"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class _SQLMemory(MemoryStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner
        self._vec_table: sa.Table | None = None

    async def get_working_memory(self, scope: Scope, owner_id: str) -> str | None:
        async with self._o._tx(False) as conn:
            return (
                await conn.execute(
                    sa.select(_wm.c.content).where(_wm.c.scope == scope, _wm.c.owner_id == owner_id)
                )
            ).scalar()

    async def set_working_memory(self, scope: Scope, owner_id: str, content: str) -> None:
        ins = self._o._insert(_wm).values(
            scope=scope, owner_id=owner_id, content=str(content), updated_at=time.time()
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[_wm.c.scope, _wm.c.owner_id],
            set_={"content": ins.excluded.content, "updated_at": ins.excluded.updated_at},
        )
        async with self._o._tx(True) as conn:
            await conn.execute(stmt)

    async def delete_working_memory(self, scope: Scope, owner_id: str) -> bool:
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.delete(_wm).where(_wm.c.scope == scope, _wm.c.owner_id == owner_id)
            )
        return bool(res.rowcount)

    async def add_user_memory(
        self, memory: UserMemory, *, embedding: Sequence[float] | None = None
    ) -> UserMemory:
        async with self._o._tx(True) as conn:
            await conn.execute(
                sa.insert(_um).values(
                    memory_id=memory.memory_id,
                    user_id=memory.user_id,
                    agent_id=memory.agent_id,
                    content=str(memory.content),
                    topics=L.dumps([str(t) for t in memory.topics], "topics"),
                    embedding=pack(embedding) if embedding is not None else None,
                    created_at=memory.created_at,
                    updated_at=memory.updated_at,
                )
            )
        return UserMemory.from_dict(memory.to_dict())

    async def get_user_memory(self, memory_id: str, *, user_id: str) -> UserMemory | None:
        async with self._o._tx(False) as conn:
            row = (
                await conn.execute(
                    sa.select(_um).where(_um.c.memory_id == memory_id, _um.c.user_id == user_id)
                )
            ).first()
        return _memory_from_row(row._mapping) if row is not None else None

    async def list_user_memories(
        self, user_id: str, *, agent_id: str | None = None, limit: int = 100
    ) -> list[UserMemory]:
        q = sa.select(_um).where(_um.c.user_id == user_id)
        if agent_id is not None:
            q = q.where(_um.c.agent_id == agent_id)
        q = q.order_by(_um.c.created_at.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [_memory_from_row(r._mapping) for r in rows]

    async def search_user_memories(
        self, user_id: str, query: str, *, limit: int = 5, embedding: Sequence[float] | None = None
    ) -> list[UserMemory]:
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(sa.select(_um).where(_um.c.user_id == user_id))).all()
        dicts = []
        for r in rows:
            d = _memory_from_row(r._mapping).to_dict()
            emb = r._mapping["embedding"]
            d["embedding"] = list(unpack(emb)) if emb is not None else None
            dicts.append(d)
        return _rank_memories(dicts, query, embedding, limit)

    async def update_user_memory(
        self,
        memory_id: str,
        *,
        user_id: str,
        content: str | None = None,
        topics: Sequence[str] | None = None,
        embedding: Sequence[float] | None = None,
    ) -> UserMemory:
        values: dict[str, Any] = {"updated_at": time.time()}
        if content is not None:
            values["content"] = str(content)
        if topics is not None:
            values["topics"] = L.dumps([str(t) for t in topics], "topics")
        if embedding is not None:
            values["embedding"] = pack(embedding)
        cond = (_um.c.memory_id == memory_id, _um.c.user_id == user_id)
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.update(_um).where(*cond).values(**values))
            if not res.rowcount:
                raise NotFound(f"no memory {memory_id!r} for this user", memory_id=memory_id)
            row = (await conn.execute(sa.select(_um).where(*cond))).first()
        assert row is not None
        return _memory_from_row(row._mapping)

    async def delete_user_memory(self, memory_id: str, *, user_id: str) -> bool:
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.delete(_um).where(_um.c.memory_id == memory_id, _um.c.user_id == user_id)
            )
        return bool(res.rowcount)

    def _vt(self) -> sa.Table:
        """The message table as pgvector sees it (with the ``embedding_vec`` column)."""
        if self._vec_table is None:
            md = sa.MetaData()
            self._vec_table = sa.Table(
                _me.name,
                md,
                *[c._copy() for c in _me.columns],
                sa.Column("embedding_vec", self._o._vector_type),
            )
        return self._vec_table

    async def add_message_embeddings(self, items: Sequence[MessageEmbedding]) -> None:
        if not items:
            return
        await self._o._ready()
        now = time.time()
        rows = [
            {
                "session_id": it.session_id,
                "run_id": it.run_id,
                "user_id": it.user_id,
                "message": L.dumps(it.message.to_dict(), "message"),
                "dims": len(it.embedding),
                "embedding": pack(it.embedding),
                "created_at": now,
            }
            for it in items
        ]
        if self._o.pgvector:
            for r, it in zip(rows, items, strict=True):
                r["vec_text"] = vector_literal(it.embedding)
            stmt = sa.insert(self._vt()).values(
                {
                    **{k: sa.bindparam(k) for k in rows[0] if k != "vec_text"},
                    "embedding_vec": _vec_param("vec_text", self._o._vector_type),
                }
            )
        else:
            stmt = sa.insert(_me)
        async with self._o._tx(True) as conn:
            await conn.execute(stmt, rows)

    def _hit(self, m: Any, score: float) -> MessageHit:
        return MessageHit(
            m["id"], m["session_id"], m["run_id"], m["user_id"],
            Message.from_dict(json.loads(m["message"])), score,
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
        await self._o._ready()
        t = self._vt() if self._o.pgvector else _me
        conds: list[Any] = [t.c.dims == len(embedding)]
        if session_id is not None:
            conds.append(t.c.session_id == session_id)
        if user_id is not None:
            conds.append(t.c.user_id == user_id)
        if exclude_run_ids:
            conds.append(sa.or_(t.c.run_id.is_(None), t.c.run_id.not_in(list(exclude_run_ids))))
        cols = [t.c.id, t.c.session_id, t.c.run_id, t.c.user_id, t.c.message]
        if self._o.pgvector:
            vtype = self._o._vector_type
            dist = t.c.embedding_vec.op(vtype.cosine_operator(), return_type=sa.Float)(
                _vec_param("q", vtype)
            )
            q = sa.select(*cols, dist.label("dist")).where(*conds)
            if threshold is not None:
                q = q.where(dist <= 1.0 - threshold)
            q = q.order_by(dist, t.c.id).limit(top_k)
            async with self._o._tx(False) as conn:
                rows = (await conn.execute(q, {"q": vector_literal(embedding)})).all()
            return [self._hit(r._mapping, 1.0 - float(r._mapping["dist"])) for r in rows]
        # exact fallback: cosine over the scope's vectors, then fetch the winners' messages
        async with self._o._tx(False) as conn:
            vecs = (await conn.execute(sa.select(t.c.id, t.c.embedding).where(*conds))).all()
            qn = norm(embedding)
            scored = []
            for rid, blob in vecs:
                s = cosine(embedding, unpack(blob), qn)
                if threshold is None or s >= threshold:
                    scored.append((s, rid))
            scored.sort(key=lambda x: (-x[0], x[1]))
            best = scored[:top_k]
            if not best:
                return []
            full = (
                await conn.execute(sa.select(*cols).where(t.c.id.in_([i for _, i in best])))
            ).all()
        by_id = {r._mapping["id"]: r._mapping for r in full}
        return [self._hit(by_id[i], s) for s, i in best if i in by_id]

    async def message_neighbours(
        self, hit: MessageHit, *, before: int, after: int
    ) -> list[MessageHit]:
        cols = [_me.c.id, _me.c.session_id, _me.c.run_id, _me.c.user_id, _me.c.message]
        base = sa.select(*cols).where(_me.c.session_id == hit.session_id)
        async with self._o._tx(False) as conn:
            prev = (
                (
                    await conn.execute(
                        base.where(_me.c.id < hit.id).order_by(_me.c.id.desc()).limit(before)
                    )
                ).all()
                if before > 0
                else []
            )
            mid = (await conn.execute(base.where(_me.c.id == hit.id))).all()
            nxt = (
                (
                    await conn.execute(
                        base.where(_me.c.id > hit.id).order_by(_me.c.id).limit(after)
                    )
                ).all()
                if after > 0
                else []
            )
        rows = [*reversed(prev), *mid, *nxt]
        return [
            self._hit(r._mapping, hit.score if r._mapping["id"] == hit.id else 0.0) for r in rows
        ]

    async def delete_session_data(self, session_id: str) -> None:
        async with self._o._tx(True) as conn:
            await conn.execute(sa.delete(_me).where(_me.c.session_id == session_id))
            await conn.execute(
                sa.delete(_wm).where(
                    _wm.c.scope.in_(("session", "summary")), _wm.c.owner_id == session_id
                )
            )

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            a = await conn.execute(sa.delete(_me).where(_me.c.created_at < before))
            b = await conn.execute(sa.delete(_um).where(_um.c.updated_at < before))
        return int(a.rowcount or 0) + int(b.rowcount or 0)


# -- workflows, traces, scores ---------------------------------------------------------------

_wf = S.workflow_snapshots
_sp = S.spans
_sc = S.scores


class _SQLWorkflows(WorkflowStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def save_snapshot(self, snapshot: WorkflowSnapshot) -> None:
        now = time.time()
        ins = self._o._insert(_wf).values(
            workflow=snapshot.workflow,
            run_id=snapshot.run_id,
            status=snapshot.status,
            snapshot=L.dumps(snapshot.snapshot, "workflow snapshot"),
            created_at=snapshot.created_at,
            updated_at=now,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[_wf.c.workflow, _wf.c.run_id],
            set_={k: ins.excluded[k] for k in ("status", "snapshot", "updated_at")},
        )
        async with self._o._tx(True) as conn:
            await conn.execute(stmt)

    @staticmethod
    def _from(m: Any) -> WorkflowSnapshot:
        return WorkflowSnapshot(
            m["workflow"],
            m["run_id"],
            json.loads(m["snapshot"]),
            m["status"],
            m["created_at"],
            m["updated_at"],
        )

    async def load_snapshot(self, workflow: str, run_id: str) -> WorkflowSnapshot | None:
        async with self._o._tx(False) as conn:
            row = (
                await conn.execute(
                    sa.select(_wf).where(_wf.c.workflow == workflow, _wf.c.run_id == run_id)
                )
            ).first()
        return self._from(row._mapping) if row is not None else None

    async def list_snapshots(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[WorkflowSnapshot]:
        q = sa.select(_wf)
        if workflow is not None:
            q = q.where(_wf.c.workflow == workflow)
        if status is not None:
            q = q.where(_wf.c.status == status)
        q = q.order_by(_wf.c.updated_at.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [self._from(r._mapping) for r in rows]

    async def delete_snapshot(self, workflow: str, run_id: str) -> bool:
        async with self._o._tx(True) as conn:
            res = await conn.execute(
                sa.delete(_wf).where(_wf.c.workflow == workflow, _wf.c.run_id == run_id)
            )
        return bool(res.rowcount)

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_wf).where(_wf.c.updated_at < before))
        return int(res.rowcount or 0)


class _SQLTraces(TraceStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def write_spans(self, spans: Sequence[SpanRecord]) -> None:
        if not spans:
            return
        rows = []
        for s in spans:
            d = s.to_dict()
            d["attributes"] = L.dumps(d["attributes"], "span attributes")
            rows.append(d)
        ins = self._o._insert(_sp)
        stmt = ins.on_conflict_do_update(
            index_elements=[_sp.c.span_id],
            set_={k: ins.excluded[k] for k in rows[0] if k != "span_id"},
        )
        async with self._o._tx(True) as conn:
            await conn.execute(stmt, rows)

    @staticmethod
    def _from(m: Any) -> SpanRecord:
        d = dict(m)
        d["attributes"] = json.loads(d["attributes"])
        return SpanRecord.from_dict(d)

    async def get_trace(self, trace_id: str) -> list[SpanRecord]:
        async with self._o._tx(False) as conn:
            rows = (
                await conn.execute(
                    sa.select(_sp)
                    .where(_sp.c.trace_id == trace_id)
                    .order_by(_sp.c.start_time, _sp.c.span_id)
                )
            ).all()
        return [self._from(r._mapping) for r in rows]

    async def list_spans(
        self, *, run_id: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[SpanRecord]:
        q = sa.select(_sp)
        if run_id is not None:
            q = q.where(_sp.c.run_id == run_id)
        if session_id is not None:
            q = q.where(_sp.c.session_id == session_id)
        q = q.order_by(_sp.c.start_time.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [self._from(r._mapping) for r in rows]

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_sp).where(_sp.c.start_time < before))
        return int(res.rowcount or 0)


class _SQLScores(ScoreStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def add_score(self, score: ScoreRecord) -> None:
        d = score.to_dict()
        d["metadata"] = L.dumps(d["metadata"], "score metadata")
        async with self._o._tx(True) as conn:
            await conn.execute(sa.insert(_sc).values(**d))

    async def list_scores(
        self,
        *,
        run_id: str | None = None,
        trace_id: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[ScoreRecord]:
        q = sa.select(_sc)
        if run_id is not None:
            q = q.where(_sc.c.run_id == run_id)
        if trace_id is not None:
            q = q.where(_sc.c.trace_id == trace_id)
        if scorer is not None:
            q = q.where(_sc.c.scorer == scorer)
        q = q.order_by(_sc.c.created_at.desc()).limit(limit)
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            d["metadata"] = json.loads(d["metadata"])
            out.append(ScoreRecord.from_dict(d))
        return out

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_sc).where(_sc.c.created_at < before))
        return int(res.rowcount or 0)


# -- run events ----------------------------------------------------------------------------------

_ev = S.run_events
_EVENT_CHUNK = 500  # rows per INSERT (4 bound parameters each: well under SQLite's limit)
_PG_EVENTS_INSERT = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) "
    "SELECT $1, t.seq, t.event, $4 FROM unnest($2::integer[], $3::text[]) AS t(seq, event) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)
_LITE_EVENTS_INSERT = (
    f"INSERT INTO {_ev.name} (run_id, seq, event, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (run_id, seq) DO NOTHING"
)


class _SQLEvents(EventStore):
    def __init__(self, owner: SQLStorage) -> None:
        self._o = owner

    async def append(
        self, run_id: str, events: Sequence[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        rows = L.event_rows(run_id, events, time.time())
        if not rows and not replace:
            return 0
        sessions = self._o.sessions
        # fast paths on the driver connections the seam uses: one hop / one round trip
        if self._o.dialect_name == "sqlite" and hasattr(sessions, "_hot_write"):
            return await self._append_sqlite(sessions, run_id, rows, replace)
        if self._o.dialect_name == "postgresql" and not replace and hasattr(sessions, "_driver"):
            async with sessions._driver() as conn:
                status = await conn.execute(
                    _PG_EVENTS_INSERT,
                    run_id,
                    [r["seq"] for r in rows],
                    [r["event"] for r in rows],
                    rows[0]["created_at"],
                )
            return int(str(status).rsplit(" ", 1)[-1] or 0)
        n = 0
        async with self._o._tx(True) as conn:
            if replace:
                await conn.execute(sa.delete(_ev).where(_ev.c.run_id == run_id))
            for i in range(0, len(rows), _EVENT_CHUNK):
                stmt = (
                    self._o._insert(_ev)
                    .values(rows[i : i + _EVENT_CHUNK])
                    .on_conflict_do_nothing(index_elements=[_ev.c.run_id, _ev.c.seq])
                )
                res = await conn.execute(stmt)
                n += max(int(res.rowcount or 0), 0)
        return n

    @staticmethod
    async def _append_sqlite(
        sessions: Any, run_id: str, rows: list[dict[str, Any]], replace: bool
    ) -> int:
        params = [(r["run_id"], r["seq"], r["event"], r["created_at"]) for r in rows]

        def body(db: Any) -> int:
            if replace:
                db.execute(f"DELETE FROM {_ev.name} WHERE run_id = ?", (run_id,))
            cur = db.executemany(_LITE_EVENTS_INSERT, params)
            return max(int(cur.rowcount), 0)

        return int(await sessions._hot_write(body))

    async def read(
        self, run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = (
            sa.select(_ev.c.event)
            .where(_ev.c.run_id == run_id, _ev.c.seq > after)
            .order_by(_ev.c.seq)
            .limit(max(limit, 0))
        )
        async with self._o._tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [json.loads(r[0]) for r in rows]

    async def delete(self, run_id: str) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_ev).where(_ev.c.run_id == run_id))
        return int(res.rowcount or 0)

    async def prune(self, before: float) -> int:
        async with self._o._tx(True) as conn:
            res = await conn.execute(sa.delete(_ev).where(_ev.c.created_at < before))
        return int(res.rowcount or 0)
