"""The one schema definition (SQLAlchemy Core tables) and its versioned migrations.

``SCHEMA_VERSION`` is the version this code writes. A fresh database gets the current tables
and a row in ``vivace_schema_version``; an older database is upgraded step by step by the
functions in ``MIGRATIONS`` (each runs inside the setup transaction); a newer one is refused.

Version history:

1. sessions, runs, working memory, user memories, workflow snapshots, spans, scores.
2. runs get ``lease_expires_at`` (crash detection); ``vivace_message_embeddings`` (semantic
   recall) is added.
3. ``vivace_run_events``: the server's persisted run events (SSE reconnect from any worker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "create_v1_schema", "create_v2_schema", "metadata"]

SCHEMA_VERSION = 3

metadata = sa.MetaData()

_ID = sa.String(255)
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.Float(precision=53)

schema_version = sa.Table(
    "vivace_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", _Time, nullable=False),
)

sessions = sa.Table(
    "vivace_sessions",
    metadata,
    sa.Column("session_id", _ID, primary_key=True),
    sa.Column("agent_id", _ID),
    sa.Column("user_id", _ID),
    sa.Column("name", sa.Text),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.Index("ix_vivace_sessions_agent", "agent_id", "updated_at"),
    sa.Index("ix_vivace_sessions_user", "user_id", "updated_at"),
    sa.Index("ix_vivace_sessions_updated", "updated_at"),
)

runs = sa.Table(
    "vivace_runs",
    metadata,
    sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", _ID, nullable=False, unique=True),
    sa.Column("session_id", _ID, nullable=False),
    sa.Column("agent_id", _ID),
    sa.Column("user_id", _ID),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("input", sa.Text),
    sa.Column("messages", sa.Text, nullable=False),
    sa.Column("output", sa.Text),
    sa.Column("usage", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("paused", sa.Text),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.Column("lease_expires_at", _Time),  # v2
    sa.Index("ix_vivace_runs_session", "session_id", "seq"),
    sa.Index("ix_vivace_runs_updated", "updated_at"),
)

working_memory = sa.Table(
    "vivace_working_memory",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("owner_id", _ID, primary_key=True),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
)

user_memories = sa.Table(
    "vivace_user_memories",
    metadata,
    sa.Column("memory_id", _ID, primary_key=True),
    sa.Column("user_id", _ID, nullable=False),
    sa.Column("agent_id", _ID),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("topics", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.Index("ix_vivace_user_memories_user", "user_id", "created_at"),
)

message_embeddings = sa.Table(  # v2
    "vivace_message_embeddings",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("session_id", _ID, nullable=False),
    sa.Column("run_id", _ID),
    sa.Column("user_id", _ID),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("dims", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # float32 little-endian
    sa.Column("created_at", _Time, nullable=False),
    sa.Index("ix_vivace_msg_emb_session", "session_id", "id"),
    sa.Index("ix_vivace_msg_emb_user", "user_id"),
)

workflow_snapshots = sa.Table(
    "vivace_workflow_snapshots",
    metadata,
    sa.Column("workflow", _ID, primary_key=True),
    sa.Column("run_id", _ID, primary_key=True),
    sa.Column("status", sa.String(64)),
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.Index("ix_vivace_wf_updated", "updated_at"),
)

spans = sa.Table(
    "vivace_spans",
    metadata,
    sa.Column("span_id", _ID, primary_key=True),
    sa.Column("trace_id", _ID, nullable=False),
    sa.Column("parent_id", _ID),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(64)),
    sa.Column("start_time", _Time, nullable=False),
    sa.Column("end_time", _Time),
    sa.Column("status", sa.String(32)),
    sa.Column("run_id", _ID),
    sa.Column("session_id", _ID),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Index("ix_vivace_spans_trace", "trace_id", "start_time"),
    sa.Index("ix_vivace_spans_run", "run_id"),
    sa.Index("ix_vivace_spans_start", "start_time"),
)

scores = sa.Table(
    "vivace_scores",
    metadata,
    sa.Column("score_id", _ID, primary_key=True),
    sa.Column("scorer", _ID, nullable=False),
    sa.Column("score", sa.Float(precision=53), nullable=False),
    sa.Column("run_id", _ID),
    sa.Column("trace_id", _ID),
    sa.Column("reason", sa.Text),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.Index("ix_vivace_scores_run", "run_id"),
    sa.Index("ix_vivace_scores_created", "created_at"),
)

run_events = sa.Table(  # v3
    "vivace_run_events",
    metadata,
    sa.Column("run_id", _ID, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.Index("ix_vivace_run_events_created", "created_at"),
)

VIVACE_TABLES = frozenset(t.name for t in metadata.sorted_tables)


# -- migrations -------------------------------------------------------------------------------


_ADDED_IN: dict[int, frozenset[str]] = {
    2: frozenset({"vivace_message_embeddings"}),
    3: frozenset({"vivace_run_events"}),
}


def _old_metadata(version: int) -> sa.MetaData:
    """The tables exactly as schema ``version`` (1 or 2) defined them (frozen; used to build
    and test upgrades)."""
    skip = frozenset().union(*(t for v, t in _ADDED_IN.items() if v > version))
    md = sa.MetaData()
    for table in metadata.sorted_tables:
        if table.name in skip:
            continue
        cols = [
            c._copy()
            for c in table.columns
            if not (version < 2 and table.name == "vivace_runs" and c.name == "lease_expires_at")
        ]
        args: list[Any] = [*cols]
        for idx in table.indexes:
            args.append(sa.Index(idx.name, *[c.name for c in idx.columns], unique=idx.unique))
        sa.Table(table.name, md, *args)
    return md


def _v1_metadata() -> sa.MetaData:
    return _old_metadata(1)


def _create_old_schema(conn: sa.Connection, version: int) -> None:
    import time

    _old_metadata(version).create_all(conn)
    schema_version.create(conn, checkfirst=True)
    for v in range(1, version + 1):
        conn.execute(schema_version.insert().values(version=v, applied_at=time.time()))


def create_v1_schema(conn: sa.Connection) -> None:
    """Create a version-1 database (what Vivace 0.1 wrote). For upgrade tests and tooling."""
    _create_old_schema(conn, 1)


def create_v2_schema(conn: sa.Connection) -> None:
    """Create a version-2 database (before the run events table). For upgrade tests."""
    _create_old_schema(conn, 2)


def _migrate_1_to_2(conn: sa.Connection) -> None:
    table = conn.dialect.identifier_preparer.format_table(runs)
    col_type = conn.dialect.type_compiler_instance.process(_Time)
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN lease_expires_at {col_type}")
    message_embeddings.create(conn)


def _migrate_2_to_3(conn: sa.Connection) -> None:
    run_events.create(conn)


MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {2: _migrate_1_to_2, 3: _migrate_2_to_3}
"""``MIGRATIONS[n]`` upgrades a version ``n-1`` database to version ``n``."""
