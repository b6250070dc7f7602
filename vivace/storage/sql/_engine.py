"""Engines: connections, transactions, setup and the drivers' fast lanes, for SQLite and
PostgreSQL. Every SQL domain module runs its statements through an :class:`Engine`:

- :meth:`Engine.tx` - a SQLAlchemy transaction (``BEGIN IMMEDIATE`` for SQLite writes, READ
  COMMITTED on PostgreSQL where writers lock their rows with ``SELECT ... FOR UPDATE``);
- :meth:`Engine.write` / :meth:`Engine.read` - a whole transaction body on a sync connection
  (on SQLite in the worker thread: one hop for the whole transaction);
- :meth:`SQLiteEngine.raw_write` - a write transaction on the sqlite3 connection itself
  (plain SQL text, no SQLAlchemy execution overhead), inline on the event loop when the
  write lock is free (see its docstring), else in the worker thread;
- :meth:`PostgresEngine.driver` - a pooled asyncpg connection outside any transaction, where
  one statement is one round trip (its own transaction).

Setup (on first use) validates the database, creates a new one, upgrades an older one
(``schema.MIGRATIONS``) and creates declared tables and indexes that are missing.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from ...errors import StorageError, UserError, VivaceError
from ..errors import CorruptDatabaseError, SchemaMissingError, SchemaVersionError
from . import schema as S

__all__ = ["Engine", "PgVector", "PostgresEngine", "SQLiteEngine", "Statement", "pg_type"]

_T = TypeVar("_T")

_CORRUPT_MARKERS = ("file is not a database", "malformed", "not a database", "file is encrypted")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


class PgVector(sa.types.UserDefinedType[Any]):
    """pgvector's ``vector`` type, qualified by the schema the extension lives in."""

    cache_ok = True

    def __init__(self, schema: str = "public") -> None:
        self.schema = schema

    def get_col_spec(self, **kw: Any) -> str:
        return f'"{self.schema}".vector'

    def cosine_operator(self) -> str:
        return f'OPERATOR("{self.schema}".<=>)'


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


class Engine:
    """A database: its SQLAlchemy engine, transactions and setup. Subclassed per dialect."""

    dialect: str = ""

    def __init__(
        self,
        url: str,
        *,
        create_tables: bool = True,
        migrate: bool = True,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.create_tables = create_tables
        self.migrate = migrate
        self.engine_options = dict(engine_options or {})
        self.pgvector = False
        self.vector_type = PgVector()
        self._engine: Any = None
        self._ready_flag = False
        self._setup_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    # -- basics ---------------------------------------------------------------------------------

    @property
    def schema_name(self) -> str | None:
        """The PostgreSQL schema holding the tables (None: the default one)."""
        return None

    def describe(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def translate(self, exc: BaseException) -> VivaceError:
        """A driver or SQLAlchemy error as a typed storage error."""
        text = str(exc)
        if self.dialect == "sqlite" and any(m in text for m in _CORRUPT_MARKERS):
            return CorruptDatabaseError(
                f"{self.describe()} is not a usable SQLite database: {_first_line(text)}",
                url=self.describe(),
            )
        return StorageError(
            f"{self.dialect} storage error: {_first_line(text)}", url=self.describe()
        )

    def insert(self, table: sa.Table) -> Any:
        """The dialect's ``INSERT`` (with ``on_conflict_do_*``)."""
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)

    def sa_engine(self) -> Any:
        """The SQLAlchemy engine (created on first use)."""
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    async def ready(self) -> None:
        """Validate, create or upgrade the schema (once)."""
        if self._ready_flag:
            return
        loop = asyncio.get_running_loop()
        if self._setup_lock is None or self._setup_lock[0] is not loop:
            self._setup_lock = (loop, asyncio.Lock())
        async with self._setup_lock[1]:
            if not self._ready_flag:
                try:
                    await self._setup_schema(self.sa_engine())
                except VivaceError:
                    raise
                except (sa.exc.SQLAlchemyError, OSError, sqlite3.Error) as exc:
                    raise self.translate(exc) from exc
                self._ready_flag = True

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        self._ready_flag = False
        if engine is not None:
            await self._dispose(engine)

    async def _dispose(self, engine: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- transactions ---------------------------------------------------------------------------

    def tx(self, write: bool) -> AbstractAsyncContextManager[Any]:
        """A transaction whose ``execute`` is awaited: ``BEGIN IMMEDIATE`` for SQLite writes,
        READ COMMITTED on PostgreSQL (writes lock the rows they change with ``FOR UPDATE``)."""
        return self._tx_impl(write)

    @asynccontextmanager
    async def _tx_impl(self, write: bool) -> AsyncIterator[Any]:  # pragma: no cover
        raise NotImplementedError
        yield

    async def run_sync(self, fn: Callable[[sa.Connection], _T], *, setup: bool = True) -> _T:
        """Run ``fn(connection)`` in one write transaction on a plain SQLAlchemy connection.
        ``setup=False`` skips creating/upgrading tables."""
        if setup:
            await self.ready()
        try:
            return await self._run_sync(fn)
        except VivaceError:
            raise
        except (sa.exc.SQLAlchemyError, OSError, sqlite3.Error) as exc:
            raise self.translate(exc) from exc

    async def _run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:  # pragma: no cover
        raise NotImplementedError

    async def write(self, body: Callable[[sa.Connection], _T]) -> _T:
        """``body(connection)`` as one write transaction."""
        return await self.run_sync(body)

    async def read(self, body: Callable[[sa.Connection], _T]) -> _T:
        """``body(connection)`` as one read transaction."""
        async with self.tx(False) as conn:
            return await conn.run_sync(body)

    async def schema_version(self) -> int:
        """The schema version stored in the database."""
        async with self.tx(False) as conn:
            v = (await conn.execute(sa.select(sa.func.max(S.schema_version.c.version)))).scalar()
        return int(v or 0)

    # -- setup ----------------------------------------------------------------------------------

    async def _setup_schema(self, engine: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _index_names(self, conn: sa.Connection) -> set[str]:  # pragma: no cover
        raise NotImplementedError

    def _check_foreign(self, tables: set[str]) -> None:
        """A new database that holds other programs' tables (SQLite refuses without opt-in)."""

    def check_and_create(self, conn: sa.Connection) -> None:
        """Validate the database; create, upgrade, and add missing tables and indexes.

        Runs in the setup transaction: whatever it raises leaves the database unchanged.
        """
        where = self.schema_name
        tables = set(sa.inspect(conn).get_table_names(schema=where))
        ours = tables & set(S.metadata.tables)
        version_table = S.schema_version.name
        if version_table not in tables:
            if ours:
                raise CorruptDatabaseError(
                    f"{self.describe()} has Vivace tables but no schema version table",
                    url=self.describe(),
                )
            if not self.create_tables:
                raise SchemaMissingError(
                    f"{self.describe()} has no Vivace tables and create_tables is off",
                    url=self.describe(),
                )
            self._check_foreign(tables)
            # none of our tables exist in this schema (a check by name would also see
            # tables of another installation further along the search path)
            S.metadata.create_all(conn, checkfirst=False)
            conn.execute(
                S.schema_version.insert().values(version=S.SCHEMA_VERSION, applied_at=time.time())
            )
            return
        cols = {c["name"] for c in sa.inspect(conn).get_columns(version_table, schema=where)}
        if not {"version", "applied_at"} <= cols:
            raise CorruptDatabaseError(
                f"{self.describe()}: {version_table} is not Vivace's", url=self.describe()
            )
        version = conn.execute(sa.select(sa.func.max(S.schema_version.c.version))).scalar()
        if version is None:
            raise CorruptDatabaseError(
                f"{self.describe()}: the schema version table is empty", url=self.describe()
            )
        if version > S.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.describe()} has schema version {version}, newer than this Vivace "
                f"({S.SCHEMA_VERSION}); upgrade Vivace. Nothing was changed.",
                found=version,
                supported=S.SCHEMA_VERSION,
            )
        missing = S.required_tables(version) - tables
        if missing:
            raise CorruptDatabaseError(
                f"{self.describe()} says schema version {version} but lacks Vivace tables "
                f"{sorted(missing)}: it is not a usable Vivace database. Nothing was changed.",
                url=self.describe(),
                missing=sorted(missing),
            )
        if version < S.SCHEMA_VERSION:
            if not self.migrate:
                raise SchemaVersionError(
                    f"{self.describe()} has schema version {version}; this Vivace needs "
                    f"{S.SCHEMA_VERSION} and migrate is off",
                    found=version,
                    supported=S.SCHEMA_VERSION,
                )
            for v in range(version + 1, S.SCHEMA_VERSION + 1):
                S.MIGRATIONS[v](conn)
                conn.execute(S.schema_version.insert().values(version=v, applied_at=time.time()))
            tables = set(sa.inspect(conn).get_table_names(schema=where))
        self._create_missing(conn, tables)

    def _create_missing(self, conn: sa.Connection, tables: set[str]) -> None:
        """Create the declared tables and indexes that do not exist (no version bump)."""
        new = [t for t in S.metadata.sorted_tables if t.name not in tables]
        indexes = self._index_names(conn)
        new_indexes = [
            idx
            for t in S.metadata.sorted_tables
            if t.name in tables
            for idx in t.indexes
            if idx.name not in indexes
        ]
        if not (new or new_indexes):
            return
        if not self.create_tables:
            names = [t.name for t in new] + [str(i.name) for i in new_indexes]
            raise SchemaMissingError(
                f"{self.describe()} lacks {names} and create_tables is off", url=self.describe()
            )
        for t in new:
            t.create(conn, checkfirst=False)
        for idx in new_indexes:
            idx.create(conn, checkfirst=False)


# -- SQLite ------------------------------------------------------------------------------------


class WriterGate:
    """One write transaction at a time on one event loop, for SQLite (one writer anyway).

    A transaction that awaits while it writes (one in the worker thread) *holds* the gate:
    ``async with gate``. An inline transaction (no
    await from start to commit) cannot interleave with another one on the same loop, so it
    does not take the gate: it only waits while the gate is held (:meth:`wait_free`), and
    all such waiters resume together when it is released. (An ``asyncio.Lock`` taken by
    every write would hand the lock over one waiter per loop pass after any hold: a convoy
    that a busy server never drains.)
    """

    __slots__ = ("_free", "_held")

    def __init__(self) -> None:
        self._held = False
        self._free = asyncio.Event()
        self._free.set()

    def locked(self) -> bool:
        return self._held

    async def wait_free(self) -> None:
        """Return once no transaction holds the gate (at once when none does)."""
        while self._held:
            await self._free.wait()

    async def __aenter__(self) -> None:
        while self._held:
            await self._free.wait()
        self._held = True
        self._free.clear()

    async def __aexit__(self, *exc: object) -> None:
        self._held = False
        self._free.set()


class SQLiteEngine(Engine):
    """A SQLite file in WAL mode through the standard library's sqlite3.

    Writers serialize with ``BEGIN IMMEDIATE`` (waiting up to ``busy_timeout`` seconds, in a
    worker thread); writers of one process queue on an ``asyncio.Lock`` first.
    """

    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = 30.0,
        allow_foreign_tables: bool = False,
        **kwargs: Any,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.allow_foreign_tables = allow_foreign_tables
        self._executor: Any = None
        self._fast: sqlite3.Connection | None = None  # inline writes (busy_timeout=0)
        self._fast_lock = threading.Lock()  # event loops of other threads use the thread
        self._commits = 0  # inline commits since the last checkpoint was started
        self._checkpointing = False
        self._checkpoints = 0
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WriterGate] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(f"sqlite:///{path}", **kwargs)

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
        opts.update(self.engine_options)
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

    async def in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` in the storage's worker thread."""
        self.sa_engine()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _open(self, write: bool) -> tuple[sa.Connection, sa.RootTransaction]:
        conn = self.sa_engine().connect()
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

    def writer_lock(self) -> WriterGate:
        """One write transaction at a time per process and event loop.

        SQLite has a single writer anyway; serializing here means the worker thread only
        ever waits for *other processes*, never for a transaction of this process whose
        commit would be queued behind it.
        """
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = WriterGate()
        return lock

    @asynccontextmanager
    async def _tx_impl(self, write: bool) -> AsyncIterator[Any]:
        await self.ready()
        shared = self.path == ":memory:"  # one connection: readers queue with writers
        try:
            if write or shared:
                async with self.writer_lock():
                    # waiting for the write lock happens in the worker thread
                    conn, tx = await self.in_thread(self._open, write)
                    try:
                        yield _InlineConn(conn)
                    except BaseException:
                        self._end(conn, tx, False)
                        raise
                    # a commit may checkpoint the WAL (fsync): not on the event loop
                    await self.in_thread(self._end, conn, tx, True)
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
            raise self.translate(exc) from exc

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

        async with self.writer_lock():
            return await self.in_thread(work)

    async def raw_write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """``body(sqlite3 connection)`` in one ``BEGIN IMMEDIATE`` transaction, one writer of
        this process at a time. The fast lane: plain SQL text, no SQLAlchemy execution.

        A file database runs it **inline on the event loop** on a connection that never
        waits (``busy_timeout=0``) and never checkpoints (``wal_autocheckpoint=0``): in WAL
        mode with ``synchronous=NORMAL`` a commit appends to the WAL without an fsync, so
        the transaction takes microseconds - less than the two thread switches it would
        otherwise cost. When another process holds the write lock the transaction is rolled
        back and run again in the worker thread, which waits up to ``busy_timeout``; WAL
        checkpoints (which fsync) run in the worker thread every
        :attr:`CHECKPOINT_EVERY` inline commits, so the loop never waits on either (see
        :meth:`_start_checkpoint`)."""
        await self.ready()
        try:
            gate = self.writer_lock()
            if gate.locked():  # a transaction that awaits (worker thread, checkpoint) runs
                await gate.wait_free()
            # nothing awaits from here to the commit: no other writer of this loop can start
            inline, out = self._write_inline(body)
            if inline:
                return out
            async with gate:  # another process writes, or a checkpoint holds the connection
                inline, out = self._write_inline(body)  # which may be over by now
                if inline:
                    return out
                return await self.in_thread(self._raw_work, body)
        except VivaceError:
            raise
        except (sqlite3.Error, sa.exc.SQLAlchemyError, OSError) as exc:
            raise self.translate(exc) from exc

    def _write_inline(self, body: Callable[[sqlite3.Connection], _T]) -> tuple[bool, Any]:
        """``(True, result)`` of ``body`` run on the inline connection, or ``(False, None)``
        when it cannot run there (another process writes; another thread's loop has it)."""
        fast = self._fast_connection()
        if fast is None or not self._fast_lock.acquire(blocking=False):
            return False, None
        try:
            out = _transaction(fast, body)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            return False, None  # another process writes: wait for it in the worker thread
        finally:
            self._fast_lock.release()
        self._commits += 1
        if self._commits >= self.CHECKPOINT_EVERY and not self._checkpointing:
            self._start_checkpoint()
        return True, out

    CHECKPOINT_EVERY = 200
    """Inline commits between two background WAL checkpoints (SQLite's own automatic
    checkpoint, off on the inline connection, runs every ~1000 pages)."""
    RESTART_EVERY = 5
    """Every n-th checkpoint holds this process's writers back so the WAL can start over."""

    def _raw_work(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        raw = self.sa_engine().raw_connection()
        try:
            db: sqlite3.Connection = raw.driver_connection
            return _transaction(db, body)
        finally:
            raw.close()

    def _fast_connection(self) -> sqlite3.Connection | None:
        if self.path == ":memory:":  # one private database: the engine's own connection
            return None
        fast = self._fast
        if fast is None:
            fast = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            fast.execute("PRAGMA busy_timeout=0")
            fast.execute("PRAGMA synchronous=NORMAL")
            fast.execute("PRAGMA wal_autocheckpoint=0")
            self._fast = fast
        return fast

    def _start_checkpoint(self) -> None:
        """A passive checkpoint in the worker thread (it copies the WAL into the database file
        and fsyncs it), started with no asyncio task: it finishes even if this event loop
        never runs again (a sync ``run()`` in a thread that ends). Most run while writers go
        on; every :attr:`RESTART_EVERY`-th holds the inline connection meanwhile, so the
        writes of every event loop of this process queue in the worker thread behind it: with
        no frame added meanwhile, the next write starts the WAL over instead of growing it,
        and as the earlier checkpoints copied most pages, the wait is short."""
        self._commits = 0
        self._checkpointing = True
        self._checkpoints += 1
        hold = self._checkpoints % self.RESTART_EVERY == 0
        executor = self._executor
        if executor is None:  # closed meanwhile
            self._checkpointing = False
            return
        executor.submit(self._checkpoint, hold)

    def _checkpoint(self, hold: bool = False) -> None:
        try:
            if hold:
                self._fast_lock.acquire()
            try:
                engine = self._engine
                if engine is not None:  # not closed meanwhile
                    raw = engine.raw_connection()
                    try:
                        raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    finally:
                        raw.close()
            finally:
                if hold:
                    self._fast_lock.release()
        except Exception:  # a failed checkpoint is retried by the next one
            pass
        finally:
            self._checkpointing = False

    async def _setup_schema(self, engine: Any) -> None:
        await self.in_thread(self._setup_sync)

    def _setup_sync(self) -> None:
        """Validate/create/upgrade, then switch to WAL. Processes opening a new file at once
        can get ``database is locked`` without SQLite's busy wait (it refuses to wait where
        waiting could deadlock, e.g. while another process switches the journal mode): the
        whole setup is then tried again, within ``busy_timeout``."""
        import random

        deadline = time.monotonic() + self.busy_timeout
        pause = 0.01
        while True:
            try:
                return self._setup_once()
            except (sqlite3.OperationalError, sa.exc.OperationalError) as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.5)

    def _setup_once(self) -> None:
        engine = self.sa_engine()
        with engine.connect() as conn:
            # reading the catalogue fails on a file that is not SQLite (nothing is written)
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
            conn.rollback()
            conn = conn.execution_options(vivace_begin="BEGIN IMMEDIATE")
            with conn.begin():
                self.check_and_create(conn)
            if self.path != ":memory:":  # only once the file is known to be ours
                conn = conn.execution_options(vivace_begin="")
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                conn.commit()
        fast = self._fast_connection()  # the inline writer, opened now, not by the first write
        if fast is not None:
            fast.execute("SELECT count(*) FROM sqlite_master").fetchone()  # and its schema read

    def _index_names(self, conn: sa.Connection) -> set[str]:
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {r[0] for r in rows}

    def _check_foreign(self, tables: set[str]) -> None:
        foreign = sorted(t for t in tables if not t.startswith("sqlite_"))
        if foreign and not self.allow_foreign_tables:
            raise CorruptDatabaseError(
                f"{self.describe()} holds other tables ({', '.join(foreign[:5])}) and no Vivace "
                "tables. Nothing was changed. To keep Vivace's tables in this file anyway, "
                "open it with allow_foreign_tables=True (URL: ?allow_foreign_tables=1): Vivace "
                "then adds its vivace_* tables and switches the file to WAL journal mode for "
                "good.",
                url=self.describe(),
                foreign_tables=foreign[:20],
            )

    async def _dispose(self, engine: Any) -> None:
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        executor, self._executor = self._executor, None
        if executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, engine.dispose)
            executor.shutdown(wait=False)
        else:
            engine.dispose()


def _transaction(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
    db.execute("BEGIN IMMEDIATE")
    try:
        out = body(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return out


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


# -- PostgreSQL --------------------------------------------------------------------------------


def pg_type(col: sa.Column[Any]) -> str:
    """The cast for a bound parameter of ``col`` in a :class:`Statement` (no length: an
    over-long value still fails on assignment instead of being truncated by the cast)."""
    t = col.type
    if isinstance(t, sa.Float):
        return "DOUBLE PRECISION"
    if isinstance(t, sa.Integer):
        return "BIGINT"
    if isinstance(t, sa.String) and t.length is not None:
        return "VARCHAR"
    return "TEXT"


class Statement:
    """SQL text for asyncpg with named parameters numbered ``$1``, ``$2``... in order of first
    use: ``s.p("run_id", "VARCHAR")`` returns ``$1::VARCHAR``; ``s.args(values)`` the
    arguments."""

    __slots__ = ("names", "text")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.text = ""

    def p(self, name: str, sql_type: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"${self.names.index(name) + 1}::{sql_type}"

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[n] for n in self.names)


class PostgresEngine(Engine):
    """PostgreSQL through asyncpg (SQLAlchemy's async engine, and the driver directly)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, schema: str | None = None, **kwargs: Any) -> None:
        if schema is not None and not schema.replace("_", "").isalnum():
            raise UserError(f"invalid PostgreSQL schema name: {schema!r}")
        self.schema = schema
        super().__init__(url, **kwargs)

    @property
    def schema_name(self) -> str | None:
        return self.schema

    def _make_engine(self) -> Any:
        from sqlalchemy.ext.asyncio import create_async_engine

        # every use of a connection ends in COMMIT or ROLLBACK: no reset round trip needed.
        # No overflow: above the pool size a run waits for a kept connection; an overflow
        # connection is a new PostgreSQL backend per transaction (measured: -40% runs/s at
        # 64 concurrent requests)
        opts: dict[str, Any] = {"pool_size": 20, "max_overflow": 0, "pool_reset_on_return": None}
        if self.schema:
            opts["connect_args"] = {"server_settings": {"search_path": f'"{self.schema}",public'}}
        opts.update(self.engine_options)
        return create_async_engine(self.url, **opts)

    @asynccontextmanager
    async def _tx_impl(self, write: bool) -> AsyncIterator[Any]:
        await self.ready()
        try:
            async with self.sa_engine().connect() as conn, conn.begin():
                yield conn
        except VivaceError:
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self.translate(exc) from exc

    async def _run_sync(self, fn: Callable[[sa.Connection], _T]) -> _T:
        async with self.sa_engine().connect() as conn, conn.begin():
            return await conn.run_sync(fn)

    async def _dispose(self, engine: Any) -> None:
        await engine.dispose()

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection, outside any transaction (each statement autocommits).

        Errors the server reports become typed storage errors; a connection that failed or
        was cancelled mid-statement is discarded, never handed to someone else.
        """
        import asyncpg
        from sqlalchemy.util import greenlet_spawn

        await self.ready()
        try:
            raw = await self.sa_engine().raw_connection()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self.translate(exc) from exc
        conn = raw.driver_connection
        healthy = True
        try:
            yield conn
        except asyncpg.PostgresError as exc:  # reported by the server: the connection is fine
            raise self.translate(exc) from exc
        except (asyncpg.InterfaceError, OSError) as exc:
            healthy = False
            raise self.translate(exc) from exc
        except BaseException as exc:
            # cancelled or failed mid-statement: do not hand the connection to someone else
            # (a domain error raised after a completed statement leaves it usable)
            healthy = isinstance(exc, Exception) and not conn.is_closed()
            raise
        finally:
            if not healthy or conn.is_closed():
                if not conn.is_closed():
                    conn.terminate()
                await greenlet_spawn(raw.invalidate)
            await greenlet_spawn(raw.close)

    def _index_names(self, conn: sa.Connection) -> set[str]:
        rows = conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
        return {r[0] for r in rows}

    async def _setup_schema(self, engine: Any) -> None:
        async with engine.connect() as conn, conn.begin():
            # one process at a time creates/upgrades (DDL is transactional here)
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7262110530)"))
            if self.schema:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.run_sync(self.check_and_create)
            await self._pg_vector(conn)

    async def _pg_vector(self, conn: Any) -> None:
        """Enable pgvector when it exists or can be created, and add the vector columns that
        tables declare (``info={"vector_column": name}``)."""
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
        self.vector_type = PgVector(str(ext_schema))
        for table in S.metadata.sorted_tables:
            column = table.info.get("vector_column")
            if column is None:
                continue
            has_col = (
                await conn.execute(
                    sa.text(
                        "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                        "current_schema() AND table_name = :t AND column_name = :c"
                    ),
                    {"t": table.name, "c": column},
                )
            ).first()
            if not has_col:
                await conn.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column}" '
                    f"{self.vector_type.get_col_spec()}"
                )
        self.pgvector = True
