"""sqlite-vec: loading it into a connection, and its two ways to search.

- **A vec0 table per collection** (the knowledge store's): ``embedding float[dims]
  distance_metric=cosine``, searched with ``MATCH ? AND k = ?``; a filter becomes an
  ``id IN (SELECT ...)`` constraint the KNN applies while it scans.
- **A BLOB column of float32 vectors** (memory's messages): ``vec_distance_cosine`` in an
  ordinary ``WHERE ... ORDER BY distance, id LIMIT k``, so filters use the table's own
  indexes.

Both are exact. sqlite-vec is loaded only into connections of the SQLite library that opens
the file: Python's ``sqlite3`` when it can load extensions (not every build can), or ``apsw``
for a file only apsw opens. Two SQLite libraries in one process must never share a database
file: each keeps its own POSIX lock bookkeeping, so one closing the file drops the other's
locks (https://www.sqlite.org/howtocorrupt.html, 2.2.1). Without sqlite-vec the caller scans
exactly in Python (:class:`~vivace.storage.vectors.ExactIndex`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = [
    "apsw_connect",
    "blob_search_params",
    "blob_search_sql",
    "load_sqlite_vec",
    "sqlite3_can_load",
    "sqlite_vec_path",
    "vec0_create_sql",
    "vec0_knn_sql",
]

_PATH: list[str | None] = []


def sqlite_vec_path() -> str | None:
    """The sqlite-vec extension's file, or None when the package is not installed.

    Found beside the package without importing it: importing ``sqlite_vec`` imports numpy
    (for its numpy helpers, unused here)."""
    if not _PATH:
        import importlib.util

        spec = importlib.util.find_spec("sqlite_vec")
        found = None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            # the file loadable_path() names, with the suffix load_extension() adds
            if any(os.path.exists(os.path.join(folder, "vec0" + s)) for s in _SUFFIXES):
                found = os.path.normpath(os.path.join(folder, "vec0"))
                break
        if found is None and spec is not None:  # laid out differently: ask the package
            import sqlite_vec

            found = sqlite_vec.loadable_path()
        _PATH.append(found)
    return _PATH[0]


_SUFFIXES = (".so", ".dylib", ".dll")


_FAILED: list[str] = []


def sqlite3_can_load() -> bool:
    """Whether Python's ``sqlite3`` here can load sqlite-vec (the extension is installed,
    this Python's build allows loading extensions, and loading it has not failed)."""
    import sqlite3

    return (
        not _FAILED
        and getattr(sqlite3.Connection, "enable_load_extension", None) is not None
        and sqlite_vec_path() is not None
    )


def load_sqlite_vec(conn: Any) -> bool:
    """Load sqlite-vec into a ``sqlite3`` connection; False when it cannot (then
    :func:`sqlite3_can_load` is False from now on)."""
    path = sqlite_vec_path()
    enable = getattr(conn, "enable_load_extension", None)
    if path is None or enable is None:
        return False
    try:
        enable(True)
        try:
            conn.load_extension(path)
        finally:
            enable(False)
    except Exception as exc:  # a build of the extension this SQLite cannot load
        _FAILED.append(f"{type(exc).__name__}: {exc}")
        return False
    return True


def apsw_connect(path: str, *, busy_timeout_ms: int = 30_000) -> Any:
    """An ``apsw`` connection to ``path`` (created, with its directory) with sqlite-vec
    loaded, in WAL mode. Raises ImportError (its ``name`` the missing package)."""
    import apsw

    vec = sqlite_vec_path()
    if vec is None:
        raise ImportError("sqlite-vec is not installed", name="sqlite_vec")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = apsw.Connection(path)
    conn.enable_load_extension(True)
    conn.load_extension(vec)
    conn.enable_load_extension(False)
    conn.set_busy_timeout(busy_timeout_ms)
    conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536")
    return conn


def vec0_create_sql(table: str, dims: int) -> str:
    """A vec0 collection: ``id`` and a cosine ``embedding`` of ``dims`` float32."""
    return (
        f"CREATE VIRTUAL TABLE {table} USING vec0("
        f"id INTEGER PRIMARY KEY, embedding float[{int(dims)}] distance_metric=cosine)"
    )


def vec0_knn_sql(
    table: str, *, rows: str, columns: str, alias: str = "c", candidates: str = ""
) -> str:
    """KNN over a vec0 collection joined to its ``rows`` table by id: parameters are the
    query (float32 bytes), k, then ``candidates``' own (a ``SELECT`` of the ids allowed).
    The distance is the last column; rows come nearest first, ties by id."""
    extra = f" AND id IN ({candidates})" if candidates else ""
    return (
        f"WITH knn AS (SELECT id, distance FROM {table} WHERE embedding MATCH ? AND k = ?{extra}) "
        f"SELECT {columns}, knn.distance FROM knn JOIN {rows} {alias} ON {alias}.id = knn.id "
        f"ORDER BY knn.distance, {alias}.id"
    )


def blob_search_sql(
    table: str, *, blob: str, columns: Sequence[str], where: str, id_column: str = "id"
) -> str:
    """KNN over a BLOB column of float32 vectors: parameters are the query (float32 bytes),
    ``where``'s own (on ``table``'s columns), then k. The nearest ids are picked first, then
    their ``columns`` read (the distance last; a zero vector is at distance 1, cosine 0)."""
    picked = ", ".join(f"m.{c}" for c in columns)
    return (
        f"SELECT {picked}, top.distance FROM ("
        f"SELECT {id_column} AS top_id, coalesce(vec_distance_cosine({blob}, ?), 1.0) AS distance "
        f"FROM {table} WHERE {where} ORDER BY distance, {id_column} LIMIT ?"
        f") AS top JOIN {table} AS m ON m.{id_column} = top.top_id "
        "ORDER BY top.distance, top.top_id"
    )


def blob_search_params(query: bytes, where_params: Sequence[Any], k: int) -> list[Any]:
    """The parameters of :func:`blob_search_sql` in order."""
    return [query, *where_params, k]
