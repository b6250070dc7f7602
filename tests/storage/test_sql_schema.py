"""SQL backends: first-use creation, migrations, version checks, bad files, error surfacing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vivace.errors import StorageError
from vivace.messages import Message
from vivace.storage import (
    CorruptDatabaseError,
    HistoryWindow,
    RunRecord,
    SchemaMissingError,
    SchemaVersionError,
    SQLiteStorage,
    open_storage,
)
from vivace.storage.sql import history
from vivace.storage.sql import schema as S


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


async def columns_by_table(st: Any) -> dict[str, set[str]]:
    def read(conn: sa.Connection) -> dict[str, set[str]]:
        import warnings

        warnings.simplefilter("ignore", sa.exc.SAWarning)  # pgvector's type is unknown to SA
        insp = sa.inspect(conn)
        return {
            t: {c["name"] for c in insp.get_columns(t)}
            for t in insp.get_table_names()
            if t.startswith("vivace_")
        }

    return await st.run_sync(read)


async def test_tables_are_created_on_first_use(sql_factory: Any) -> None:
    st = sql_factory()
    assert await st.sessions.get_session("x") is None  # first use creates the schema
    assert await st.schema_version() == S.SCHEMA_VERSION
    cols = await columns_by_table(st)
    assert set(cols) == set(S.metadata.tables)
    if sql_factory.kind == "sqlite":
        with sqlite3.connect(sql_factory.path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    else:
        assert st.pgvector  # the pgserver build ships pgvector
        assert "embedding_vec" in cols["vivace_message_embeddings"]


async def test_create_tables_off_on_an_empty_database(sql_factory: Any) -> None:
    st = sql_factory(create_tables=False)
    with pytest.raises(SchemaMissingError):
        await st.sessions.get_session("x")


async def _make_v1(sql_factory: Any) -> None:
    """A database as schema version 1 left it, with a session and a finished run."""
    st = sql_factory()

    def build(conn: sa.Connection) -> None:
        if sql_factory.kind == "postgres":
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{sql_factory.schema}"')
        history.create_v1_schema(conn)
        conn.execute(
            sa.text(
                "INSERT INTO vivace_sessions (session_id, agent_id, user_id, name, state, metadata, created_at, updated_at) "
                "VALUES ('old', 'agent', 'u1', 'Old', :state, '{}', 1.0, 2.0)"
            ),
            {"state": '{"kept": true}'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO vivace_runs (run_id, session_id, agent_id, user_id, status, input, messages, output, usage, error, paused, metadata, created_at, updated_at) "
                "VALUES ('old-run', 'old', 'agent', 'u1', 'completed', NULL, :msgs, '\"hi\"', NULL, NULL, NULL, '{}', 1.0, 2.0)"
            ),
            {"msgs": '[{"role":"user","parts":[{"kind":"text","text":"hello from v1"}]}]'},
        )

    await st.run_sync(build, setup=False)  # as Vivace 0.1 left it, before any upgrade
    await st.close()


async def test_a_version_1_database_is_upgraded(sql_factory: Any) -> None:
    await _make_v1(sql_factory)
    st = sql_factory()
    ctx = await st.sessions.load_context("old", user_id="u1", history=HistoryWindow())
    assert ctx.session is not None and ctx.session.name == "Old"
    assert ctx.state == {"kept": True}
    assert [m.text for m in ctx.history] == ["hello from v1"]
    assert await st.schema_version() == S.SCHEMA_VERSION

    # the v2 features work on the upgraded database
    rec = RunRecord("new-run", "old", user_id="u1")
    await st.sessions.begin_run(rec, lease=0.0)
    assert (await st.sessions.get_run("new-run")).status == "incomplete"
    from vivace.storage import MessageEmbedding

    await st.memory.add_message_embeddings([MessageEmbedding("old", Message.user("x"), [1.0, 0.0])])
    assert len(await st.memory.search_messages([1.0, 0.0], session_id="old")) == 1

    # same tables and columns as a database created fresh by this version
    fresh_factory = type(sql_factory)(
        sql_factory.kind, Path(sql_factory.path).parent / "fresh", sql_factory._request
    )
    Path(fresh_factory.path).parent.mkdir(exist_ok=True)
    fresh = fresh_factory()
    try:
        await fresh.setup()
        assert await columns_by_table(st) == await columns_by_table(fresh)
    finally:
        await fresh_factory.aclose()


async def test_upgrade_refused_when_migrate_is_off(sql_factory: Any) -> None:
    await _make_v1(sql_factory)
    st = sql_factory(migrate=False)
    with pytest.raises(SchemaVersionError):
        await st.sessions.get_session("old")


async def test_a_newer_schema_is_refused_and_left_untouched(sql_factory: Any) -> None:
    st = sql_factory()
    await st.run_sync(
        lambda conn: conn.execute(
            S.schema_version.insert().values(version=S.SCHEMA_VERSION + 1, applied_at=0.0)
        )
    )
    await st.close()
    before = digest(sql_factory.path) if sql_factory.kind == "sqlite" else None

    newer = sql_factory()
    with pytest.raises(SchemaVersionError) as info:
        await newer.sessions.load_context("s", user_id="u")
    assert info.value.details["found"] == S.SCHEMA_VERSION + 1
    with pytest.raises(SchemaVersionError):
        await newer.sessions.finish_run(RunRecord("r", "s", status="completed"))
    await newer.close()
    if before is not None:
        assert digest(sql_factory.path) == before


async def test_a_corrupt_file_is_a_typed_error_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database at all " * 200)
    before = digest(path)
    st = SQLiteStorage(path)
    with pytest.raises(CorruptDatabaseError):
        await st.sessions.load_context("s")
    with pytest.raises(CorruptDatabaseError):
        await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    await st.close()
    assert digest(path) == before


async def test_a_foreign_database_with_our_table_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE vivace_sessions (id INTEGER PRIMARY KEY, whatever TEXT)")
    before = digest(path)
    st = SQLiteStorage(path)
    with pytest.raises(CorruptDatabaseError):
        await st.sessions.get_session("s")
    await st.close()
    assert digest(path) == before


async def test_other_programs_tables_can_share_the_database(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE app_users (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO app_users VALUES (7)")
    st = SQLiteStorage(path, allow_foreign_tables=True)
    await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    await st.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id FROM app_users").fetchall() == [(7,)]


async def test_database_errors_surface_as_storage_errors_not_missing_sessions(
    sql_factory: Any,
) -> None:
    st = sql_factory()
    await st.sessions.finish_run(RunRecord("r", "s", user_id="u", status="completed"))
    # someone breaks the database behind our back
    await st.run_sync(lambda conn: conn.exec_driver_sql("DROP TABLE vivace_runs"))
    with pytest.raises(StorageError) as info:
        await st.sessions.load_context("s", user_id="u", history=HistoryWindow())
    assert "vivace_runs" in str(info.value)
    with pytest.raises(StorageError):
        await st.sessions.get_run("r")


async def test_postgres_is_unreachable_is_a_storage_error() -> None:
    from vivace.storage import PostgresStorage

    st = PostgresStorage("postgresql://nobody:pw@127.0.0.1:1/none")
    with pytest.raises(StorageError):
        await st.sessions.load_context("s")
    await st.close()


async def test_open_storage_picks_the_backend(tmp_path: Path, postgres_url: str) -> None:
    from vivace.storage import InMemoryStorage, PostgresStorage

    st = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(st, SQLiteStorage) and st.path == str(tmp_path / "a.db")
    await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    await st.close()
    assert (tmp_path / "a.db").exists()
    assert isinstance(open_storage("memory://"), InMemoryStorage)
    pg = open_storage(
        postgres_url + "&schema=opened" if "?" in postgres_url else postgres_url + "?schema=opened"
    )
    assert isinstance(pg, PostgresStorage) and pg.schema == "opened"
    await pg.sessions.finish_run(RunRecord("r", "s", status="completed"))
    assert (await pg.sessions.get_run("r")).status == "completed"
    await pg.run_sync(lambda conn: conn.exec_driver_sql('DROP SCHEMA "opened" CASCADE'))
    await pg.close()
    from vivace.errors import UserError

    with pytest.raises(UserError):
        open_storage("mysql://x")
    with pytest.raises(UserError):
        open_storage("sqlite://relative.db")


async def test_sqlite_in_memory_database(tmp_path: Path) -> None:
    st = SQLiteStorage(":memory:")
    await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    assert (await st.sessions.get_run("r")).status == "completed"
    await st.close()


def test_importing_storage_does_not_load_sqlalchemy() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import vivace, vivace.storage, sys; print(any(m.startswith('sqlalchemy') for m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "False"


async def test_child_runs_are_found_by_an_index_that_holds_only_them(sql_factory: Any) -> None:
    st = sql_factory()
    await st.sessions.begin_run(RunRecord("top", "s", user_id="u1"))
    await st.sessions.begin_run(RunRecord("kid", "s", user_id="u1", parent_run_id="top"))
    assert [r.run_id for r in await st.sessions.list_runs(parent_run_id="top")] == ["kid"]

    def plan(conn: sa.Connection) -> str:
        query = "SELECT run_id FROM vivace_runs WHERE parent_run_id = 'top' ORDER BY seq"
        if sql_factory.kind == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
            return " ".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: force the index
        return " ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {query}").all())

    assert "ix_vivace_runs_children" in await st.run_sync(plan)

    def indexed(conn: sa.Connection) -> str:  # the index is partial: top-level runs stay out
        if sql_factory.kind == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_vivace_runs_children'"
        else:
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_vivace_runs_children'"
        return str(conn.exec_driver_sql(sql).scalar())

    assert "parent_run_id IS NOT NULL" in await st.run_sync(indexed)
    await st.close()
