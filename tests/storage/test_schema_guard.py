"""Opening a database: half-made and foreign databases are refused untouched, upgrades from
every earlier version keep the data (free text included), and tables/indexes a feature adds
are created without a version bump."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vivace.storage import CorruptDatabaseError, RunRecord, SQLiteStorage, UserMemory
from vivace.storage.sql import history, schema

RAW = "line one\nline two 中文 😀 \\ \" '"


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def journal_mode(path: str | Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


async def tables(st: Any) -> set[str]:
    return set(await st.run_sync(lambda c: sa.inspect(c).get_table_names(), setup=False))


async def test_a_database_with_only_the_version_table_is_refused_untouched(
    sql_factory: Any,
) -> None:
    st = sql_factory()

    def build(conn: sa.Connection) -> None:
        if sql_factory.kind == "postgres":
            conn.exec_driver_sql(f'CREATE SCHEMA "{sql_factory.schema}"')
        schema.schema_version.create(conn)
        conn.execute(
            schema.schema_version.insert().values(version=schema.SCHEMA_VERSION, applied_at=0.0)
        )

    await st.run_sync(build, setup=False)
    await st.close()
    before = digest(sql_factory.path) if sql_factory.kind == "sqlite" else None

    st = sql_factory()
    with pytest.raises(CorruptDatabaseError, match="vivace_sessions"):
        await st.sessions.get_session("x")
    with pytest.raises(CorruptDatabaseError):
        await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    assert await tables(st) == {"vivace_schema_version"}
    await st.close()
    if before is not None:
        assert digest(sql_factory.path) == before
        assert journal_mode(sql_factory.path) == "delete"


async def test_a_foreign_sqlite_database_needs_an_explicit_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE app_users (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO app_users VALUES (7)")
    before = digest(path)
    st = SQLiteStorage(path)
    with pytest.raises(CorruptDatabaseError, match="allow_foreign_tables"):
        await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    await st.close()
    assert digest(path) == before and journal_mode(path) == "delete"

    from vivace.storage import open_storage

    st = open_storage(f"sqlite:///{path}?allow_foreign_tables=1")
    await st.sessions.finish_run(RunRecord("r", "s", status="completed"))
    await st.close()
    assert journal_mode(path) == "wal"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id FROM app_users").fetchall() == [(7,)]
    # from now on it is a Vivace database: no opt-in needed any more
    st = SQLiteStorage(path)
    assert (await st.sessions.get_run("r")).status == "completed"
    await st.close()


async def _make_old(factory: Any, version: int) -> None:
    """A database exactly as schema ``version`` left it, with data in every domain."""
    st = factory()
    # free text: as is before version 4, a JSON string from then on
    text = RAW if version < 4 else json.dumps(RAW, ensure_ascii=False)

    def build(conn: sa.Connection) -> None:
        if factory.kind == "postgres":
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{factory.schema}"')
        history.create_schema(conn, version)
        conn.execute(
            sa.text(
                "INSERT INTO vivace_sessions (session_id, agent_id, user_id, name, state, "
                "metadata, created_at, updated_at) VALUES ('old', 'agent', 'u1', :name, "
                ":state, '{}', 1.0, 2.0)"
            ),
            {"name": text, "state": '{"kept": true}'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO vivace_runs (run_id, session_id, agent_id, user_id, status, "
                "input, messages, output, usage, error, paused, metadata, created_at, "
                "updated_at) VALUES ('old-run', 'old', 'agent', 'u1', 'completed', NULL, "
                ":msgs, '\"hi\"', NULL, NULL, NULL, '{}', 1.0, 2.0)"
            ),
            {"msgs": '[{"role":"user","parts":[{"kind":"text","text":"hello"}]}]'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO vivace_working_memory (scope, owner_id, content, updated_at) "
                "VALUES ('session', 'old', :c, 1.0), ('user', 'u1', :empty, 1.0)"
            ),
            {"c": text, "empty": "" if version < 4 else '""'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO vivace_user_memories (memory_id, user_id, agent_id, content, "
                "topics, embedding, created_at, updated_at) "
                "VALUES ('m1', 'u1', NULL, :c, '[\"t\"]', NULL, 1.0, 1.0)"
            ),
            {"c": text},
        )

    await st.run_sync(build, setup=False)
    await st.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
async def test_every_earlier_version_is_upgraded_with_its_data(
    sql_factory: Any, version: int
) -> None:
    await _make_old(sql_factory, version)
    st = sql_factory()
    ctx = await st.sessions.load_context("old", user_id="u1")
    assert ctx.session is not None and ctx.session.name == RAW and ctx.state == {"kept": True}
    assert await st.schema_version() == schema.SCHEMA_VERSION
    assert await st.memory.get_working_memory("session", "old") == RAW
    assert await st.memory.get_working_memory("user", "u1") == ""
    mem = await st.memory.get_user_memory("m1", user_id="u1")
    assert mem is not None and mem.content == RAW and mem.topics == ["t"]
    old = await st.sessions.get_run("old-run")
    assert old.output == "hi" and (old.trace_id, old.span_id, old.parent_run_id) == (None,) * 3

    # what the new version adds works on the upgraded database
    child = RunRecord("child", "old", user_id="u1", trace_id="t" * 32, parent_run_id="old-run")
    await st.sessions.begin_run(child)
    assert [r.run_id for r in await st.sessions.list_runs(parent_run_id="old-run")] == ["child"]
    await st.memory.add_user_memory(UserMemory("m2", "u1", "nul \x00 here"))
    assert (await st.memory.get_user_memory("m2", user_id="u1")).content == "nul \x00 here"
    await st.sessions.rename_session("old", "名字 \x00")
    assert (await st.sessions.get_session("old")).name == "名字 \x00"

    # the same tables, columns and indexes as a database created by this version
    fresh = type(sql_factory)(
        sql_factory.kind, Path(sql_factory.path).parent / "fresh", sql_factory._request
    )
    Path(fresh.path).parent.mkdir(exist_ok=True)
    try:
        made = fresh()
        await made.setup()
        assert await layout(st) == await layout(made)
    finally:
        await fresh.aclose()


async def layout(st: Any) -> dict[str, tuple[set[str], set[str]]]:
    def read(conn: sa.Connection) -> dict[str, tuple[set[str], set[str]]]:
        import warnings

        warnings.simplefilter("ignore", sa.exc.SAWarning)  # pgvector's type is unknown to SA
        insp = sa.inspect(conn)
        return {
            t: (
                {c["name"] for c in insp.get_columns(t)},
                {str(i["name"]) for i in insp.get_indexes(t)},
            )
            for t in insp.get_table_names()
            if t.startswith("vivace_")
        }

    return dict(await st.run_sync(read))


async def test_new_tables_and_indexes_are_created_without_a_version_bump(
    sql_factory: Any,
) -> None:
    st = sql_factory()
    await st.setup()
    await st.run_sync(lambda c: c.exec_driver_sql("DROP INDEX ix_vivace_runs_children"))
    await st.close()
    # a feature that adds a table with an index (declared on the shared metadata)
    extra = sa.Table(
        "vivace_test_feature",
        schema.metadata,
        sa.Column("item_id", schema.ID, primary_key=True),
        sa.Column("created_at", schema.Time, nullable=False),
        sa.Index("ix_vivace_test_feature_created", "created_at"),
    )
    try:
        st = sql_factory()
        await st.setup()
        found = await layout(st)
        assert "ix_vivace_runs_children" in found["vivace_runs"][1]
        assert found["vivace_test_feature"] == (
            {"item_id", "created_at"},
            {"ix_vivace_test_feature_created"},
        )
        assert await st.schema_version() == schema.SCHEMA_VERSION
        await st.close()
        again = sql_factory()  # creating is idempotent: a second open changes nothing
        await again.setup()
        assert await layout(again) == found
    finally:
        schema.metadata.remove(extra)


def test_migrations_are_numbered_without_gaps() -> None:
    assert sorted(schema.MIGRATIONS) == list(range(2, schema.SCHEMA_VERSION + 1))
