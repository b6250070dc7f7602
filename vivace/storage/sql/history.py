"""Databases exactly as earlier schema versions left them (for upgrade tests and tooling).

The tables of version ``n`` are rebuilt from today's definitions minus what later versions
added (:data:`~vivace.storage.sql.schema.ADDED_COLUMNS`, tables' ``info["since"]``, and tables
and indexes created without a version), with ids as ``VARCHAR(255)`` before version 4.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

# every domain's tables, registered on the shared metadata
from . import events, memory, scores, sessions, traces, workflows  # noqa: F401
from .schema import (
    ADDED_COLUMNS,
    ID,
    REMOVED_INDEXES,
    SCHEMA_VERSION,
    metadata,
    schema_version,
)

__all__ = ["create_schema", "create_v1_schema", "create_v2_schema", "old_metadata"]


def old_metadata(version: int) -> sa.MetaData:
    """The tables exactly as schema ``version`` defined them."""
    if not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"no schema version {version}")
    later: dict[str, set[str]] = {}
    for v, tables in ADDED_COLUMNS.items():
        if v > version:
            for name, added in tables.items():
                later.setdefault(name, set()).update(added)
    md = sa.MetaData()
    for table in metadata.sorted_tables:
        since = table.info.get("since")
        if since is None or since > version:
            continue
        skip = later.get(table.name, set())
        cols: list[sa.Column[Any]] = []
        for c in table.columns:
            if c.name in skip:
                continue
            col = c._copy()
            if version < 4 and isinstance(c.type, sa.String) and c.type.length == ID.length:
                col.type = sa.String(255)
            cols.append(col)
        args: list[Any] = [*cols]
        for idx in table.indexes:
            names = [c.name for c in idx.columns]
            if idx.info.get("since", 1) <= version and not skip.intersection(names):
                args.append(sa.Index(idx.name, *names, unique=idx.unique, **idx.dialect_kwargs))
        for v, dropped in REMOVED_INDEXES.items():  # indexes a later version dropped
            for name, columns in dropped.get(table.name, ()) if v > version else ():
                if not skip.intersection(columns):
                    args.append(sa.Index(name, *columns))
        sa.Table(table.name, md, *args)
    return md


def create_schema(conn: sa.Connection, version: int) -> None:
    """Create a version-``version`` database (tables, indexes, version rows)."""
    old_metadata(version).create_all(conn)
    for v in range(1, version + 1):
        conn.execute(schema_version.insert().values(version=v, applied_at=time.time()))


def create_v1_schema(conn: sa.Connection) -> None:
    """Create a version-1 database (what Vivace 0.1 wrote)."""
    create_schema(conn, 1)


def create_v2_schema(conn: sa.Connection) -> None:
    """Create a version-2 database (before the run events table)."""
    create_schema(conn, 2)
