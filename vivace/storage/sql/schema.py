"""The shared schema machinery: one ``MetaData``, column types, the version table and the
numbered migrations. Each domain module declares its own tables on :data:`metadata`.

How the schema grows (several features may add tables at the same time):

- **A new table or index** is declared in its domain module (``sql/<domain>.py``) and needs
  no version bump: setup creates every declared table and index that is missing, each time a
  storage opens a database (idempotent; one process at a time).
- **A change to an existing table** (a new column, a wider type, rewritten data, a dropped
  index) is a numbered migration: bump :data:`SCHEMA_VERSION`, add ``MIGRATIONS[n]`` (it
  runs inside the setup transaction) and record added columns in :data:`ADDED_COLUMNS` and
  dropped indexes in :data:`REMOVED_INDEXES` (old schemas are rebuilt from them for upgrade
  tests). A table that must exist from some version on carries
  ``info={"since": n}``: a database of version ``>= n`` without it is refused as corrupt.

Version history:

1. sessions, runs, working memory, user memories, workflow snapshots, spans, scores.
2. runs get ``lease_expires_at`` (crash detection); ``vivace_message_embeddings``.
3. ``vivace_run_events``: the server's persisted run events.
4. runs get ``trace_id``, ``span_id``, ``parent_run_id``; ids are ``VARCHAR(256)`` (the id
   rule's limit); free text columns (session name, working memory, user memory content) hold
   JSON strings, so any character - NUL included - fits PostgreSQL's text type.
5. spans get the columns the trace queries filter and add up (``agent``, ``model``,
   ``workflow``, ``user_id``, ``span_type``, ``run_status``, ``error``, ``is_root``,
   ``duration_ms``, token counts, ``cost_usd``), filled from each span's attributes.
6. the runs' ``parent_run_id`` index holds only child runs (``ix_vivace_runs_children``, a
   partial index, replaces ``ix_vivace_runs_parent``): a top-level run writes one index less.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa

__all__ = [
    "ADDED_COLUMNS",
    "ID",
    "MIGRATIONS",
    "REMOVED_INDEXES",
    "SCHEMA_VERSION",
    "BigId",
    "Time",
    "metadata",
    "required_tables",
    "schema_version",
]

SCHEMA_VERSION = 6

metadata = sa.MetaData()

ID = sa.String(256)
"""An id column (:data:`vivace.identifiers.MAX_ID_LENGTH` characters)."""
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.Float(precision=53)

schema_version = sa.Table(
    "vivace_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", Time, nullable=False),
    info={"since": 1},
)

ADDED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    2: {"vivace_runs": ("lease_expires_at",)},
    4: {"vivace_runs": ("trace_id", "span_id", "parent_run_id")},
    5: {
        "vivace_spans": (
            "agent",
            "model",
            "workflow",
            "user_id",
            "span_type",
            "run_status",
            "error",
            "is_root",
            "duration_ms",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "cost_usd",
        )
    },
}
"""Columns added to existing tables, by the version that added them."""

REMOVED_INDEXES: dict[int, dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    6: {"vivace_runs": (("ix_vivace_runs_parent", ("parent_run_id", "seq")),)},
}
"""Indexes a version dropped (name and columns, by table), so old schemas can be rebuilt."""

FREE_TEXT_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "vivace_sessions": ("name", ("session_id",)),
    "vivace_working_memory": ("content", ("scope", "owner_id")),
    "vivace_user_memories": ("content", ("memory_id",)),
}
"""Free-text columns stored as JSON strings (since version 4): column and primary key."""


def required_tables(version: int) -> set[str]:
    """The tables a database of schema ``version`` must have."""
    return {
        t.name
        for t in metadata.sorted_tables
        if t.info.get("since") is not None and t.info["since"] <= version
    }


# -- migrations -------------------------------------------------------------------------------


def _table(name: str) -> sa.Table:
    return metadata.tables[name]


def _add_columns(conn: sa.Connection, table: str, columns: tuple[str, ...]) -> None:
    t = _table(table)
    prep = conn.dialect.identifier_preparer
    for name in columns:
        col_type = conn.dialect.type_compiler_instance.process(t.c[name].type)
        conn.exec_driver_sql(
            f"ALTER TABLE {prep.format_table(t)} ADD COLUMN {prep.quote(name)} {col_type}"
        )


def _migrate_1_to_2(conn: sa.Connection) -> None:
    _add_columns(conn, "vivace_runs", ADDED_COLUMNS[2]["vivace_runs"])
    _table("vivace_message_embeddings").create(conn)


def _migrate_2_to_3(conn: sa.Connection) -> None:
    _table("vivace_run_events").create(conn)


def _migrate_3_to_4(conn: sa.Connection) -> None:
    _add_columns(conn, "vivace_runs", ADDED_COLUMNS[4]["vivace_runs"])
    if conn.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        prep = conn.dialect.identifier_preparer
        for table in metadata.sorted_tables:
            if table.info.get("since") is None or table.info["since"] > 3:
                continue
            later = {c for v, t in ADDED_COLUMNS.items() if v > 4 for c in t.get(table.name, ())}
            for col in table.columns:
                if col.name in later:  # added by a later migration: not there yet
                    continue
                if isinstance(col.type, sa.String) and col.type.length == ID.length:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {prep.format_table(table)} ALTER COLUMN "
                        f"{prep.quote(col.name)} TYPE VARCHAR({ID.length})"
                    )
    for name, (column, keys) in FREE_TEXT_COLUMNS.items():
        t = _table(name)
        rows = conn.execute(
            sa.select(*[t.c[k] for k in keys], t.c[column]).where(t.c[column].is_not(None))
        ).all()
        if rows:
            stmt = (
                sa.update(t)
                .where(*[t.c[k] == sa.bindparam(f"k_{k}") for k in keys])
                .values({column: sa.bindparam("v_text")})
            )
            conn.execute(
                stmt,
                [
                    {
                        **{f"k_{k}": r[i] for i, k in enumerate(keys)},
                        "v_text": json.dumps(str(r[-1]), ensure_ascii=False),
                    }
                    for r in rows
                ],
            )


def _migrate_4_to_5(conn: sa.Connection) -> None:
    from .._spans import facts
    from ..records import SpanRecord

    _add_columns(conn, "vivace_spans", ADDED_COLUMNS[5]["vivace_spans"])
    t = _table("vivace_spans")
    rows = conn.execute(
        sa.select(t.c.span_id, t.c.parent_id, t.c.start_time, t.c.end_time, t.c.status).add_columns(
            t.c.attributes
        )
    ).all()
    if rows:
        stmt = (
            sa.update(t)
            .where(t.c.span_id == sa.bindparam("k_span_id"))
            .values({c: sa.bindparam(f"v_{c}") for c in ADDED_COLUMNS[5]["vivace_spans"]})
        )
        values = []
        for span_id, parent_id, start, end, status, attributes in rows:
            record = SpanRecord(
                span_id=span_id,
                trace_id="",
                name="",
                parent_id=parent_id,
                start_time=start,
                end_time=end,
                status=status,
                attributes=json.loads(attributes or "{}"),
            )
            cols = facts(record).columns()
            values.append({"k_span_id": span_id, **{f"v_{k}": v for k, v in cols.items()}})
        conn.execute(stmt, values)


def _migrate_5_to_6(conn: sa.Connection) -> None:
    # the partial ix_vivace_runs_children that replaces it is created as a missing index
    prep = conn.dialect.identifier_preparer
    for table, indexes in REMOVED_INDEXES[6].items():
        for name, _ in indexes:
            qualified = prep.quote(name)
            if conn.dialect.name == "postgresql":  # in Vivace's schema, not further along
                where = conn.execute(
                    sa.text(
                        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:t)"
                    ),
                    {"t": prep.quote(table)},
                ).scalar()
                if where is None:
                    continue
                qualified = f"{prep.quote_schema(where)}.{qualified}"
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {qualified}")


MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    2: _migrate_1_to_2,
    3: _migrate_2_to_3,
    4: _migrate_3_to_4,
    5: _migrate_4_to_5,
    6: _migrate_5_to_6,
}
"""``MIGRATIONS[n]`` upgrades a version ``n-1`` database to version ``n``."""
