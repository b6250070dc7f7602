"""pgvector: cosine search over one ``vector`` column with a partial HNSW index per
collection, on an asyncpg connection.

The column has no size (``vector``), so collections of different sizes share a table; a
collection is the rows where ``key_column = key`` (a knowledge base's id, or for memory's
messages the vector size itself), all of one size ``dims``. Its index is built on
``column::vector(dims)`` for those rows only, and every search casts the same way, names the
key as a literal (so the planner matches the partial index, generic plans included) and
passes the query as ``(SELECT $1::vector(dims))`` (binary, with pgvector's codec on the
connection) or ``(SELECT $1::real[]::vector(dims))`` - evaluated once per search, not once
per row. The planner then picks the HNSW index or, for a selective filter (a session,
a small user), that filter's B-tree index and an exact sort. Filtered HNSW scans run with
``hnsw.iterative_scan = relaxed_order`` so they still fill ``k``; rows come back re-sorted by
distance, then id.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

from .codec import pack, to_floats

__all__ = ["PgVectorIndex", "quote_ident", "register_vector_codec"]


async def register_vector_codec(conn: Any, schema: str = "public") -> None:
    """Give an asyncpg connection pgvector's binary codec: ``vector`` values go and come as
    :func:`~vivace.storage.vectors.pack` bytes."""
    from .codec import pg_decode, pg_encode

    await conn.set_type_codec(
        "vector", schema=schema, encoder=pg_encode, decoder=pg_decode, format="binary"
    )


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


class PgVectorIndex:
    """Cosine search over ``table.column`` (pgvector), one partial HNSW index per collection.

    ``table`` is SQL (quoted and qualified as needed); ``index_schema`` the schema the indexes
    live in (None: the connection's ``current_schema()``); ``vector_schema`` the schema of the
    pgvector extension. HNSW parameters: ``m`` and ``ef_construction`` when an index is built,
    ``ef_search`` per query (raised to ``k`` for larger searches). Collections of more than
    :attr:`MAX_INDEX_DIMS` dimensions (pgvector's HNSW limit for ``vector``) get no index and
    are searched exactly. ``binary_query``: the connections have a binary codec for pgvector's
    ``vector`` type that takes :func:`~vivace.storage.vectors.pack` bytes (the knowledge
    store's do), so the query vector is sent as a ``vector`` in that form instead of a
    ``real[]`` built from a list of floats (which asyncpg encodes element by element).
    ``register_codec``: :meth:`configure` gives each connection that codec itself (for
    connections of a pool this index does not open, e.g. the storage's); implies
    ``binary_query``.
    """

    MAX_INDEX_DIMS = 2000

    __slots__ = (
        "_configured",
        "binary_query",
        "column",
        "ef_construction",
        "ef_search",
        "id_column",
        "index_prefix",
        "index_schema",
        "key_column",
        "m",
        "register_codec",
        "table",
        "vector_schema",
    )

    def __init__(
        self,
        table: str,
        *,
        column: str,
        key_column: str,
        index_prefix: str,
        id_column: str = "id",
        index_schema: str | None = None,
        vector_schema: str = "public",
        m: int = 16,
        ef_construction: int = 64,
        ef_search: int = 64,
        binary_query: bool = False,
        register_codec: bool = False,
    ) -> None:
        self.table = table
        self.binary_query = binary_query or register_codec
        self.register_codec = register_codec
        self.column = column
        self.key_column = key_column
        self.id_column = id_column
        self.index_prefix = index_prefix
        self.index_schema = index_schema
        self.vector_schema = vector_schema
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)
        self._configured: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- SQL --------------------------------------------------------------------------------------

    def vector_type(self, dims: int) -> str:
        return f"{quote_ident(self.vector_schema)}.vector({int(dims)})"

    def expr(self, dims: int, alias: str = "") -> str:
        """The indexed expression: the column cast to ``vector(dims)``."""
        col = f"{alias}.{self.column}" if alias else self.column
        return f"({col}::{self.vector_type(dims)})"

    def index_name(self, key: int) -> str:
        return f"{self.index_prefix}{int(key)}"

    def _qualified_index(self, key: int) -> str:
        name = quote_ident(self.index_name(key))
        return f"{quote_ident(self.index_schema)}.{name}" if self.index_schema else name

    def indexable(self, dims: int) -> bool:
        """Whether collections of ``dims`` dimensions can have an HNSW index."""
        return 0 < dims <= self.MAX_INDEX_DIMS

    def create_index_sql(self, key: int, dims: int) -> str:
        """``CREATE INDEX IF NOT EXISTS``: the collection's HNSW index (cosine); only for
        :meth:`indexable` sizes."""
        return (
            f"CREATE INDEX IF NOT EXISTS {quote_ident(self.index_name(key))} ON {self.table} "
            f"USING hnsw ({self.expr(dims)} {quote_ident(self.vector_schema)}.vector_cosine_ops) "
            f"WITH (m = {self.m}, ef_construction = {self.ef_construction}) "
            f"WHERE {self.key_column} = {int(key)}"
        )

    def drop_index_sql(self, key: int) -> str:
        return f"DROP INDEX IF EXISTS {self._qualified_index(key)}"

    def session_settings(self) -> dict[str, str]:
        """Settings for every connection that searches (e.g. an asyncpg pool's
        ``server_settings``): ``ef_search`` candidates and iterative scans."""
        return {"hnsw.ef_search": str(self.ef_search), "hnsw.iterative_scan": "relaxed_order"}

    def search_sql(
        self, key: int, dims: int, *, columns: str, alias: str = "t", where: str = ""
    ) -> str:
        """The KNN statement: ``$1`` the query (``real[]``, or a ``vector`` with
        ``binary_query``), ``$2`` k, the caller's parameters from ``$3``; the distance is the
        last column."""
        vt = self.vector_type(dims)
        query = f"$1::{vt}" if self.binary_query else f"$1::real[]::{vt}"
        dist = (
            f"{self.expr(dims, alias)} OPERATOR({quote_ident(self.vector_schema)}.<=>) "
            f"(SELECT {query})"
        )
        cond = f"{alias}.{self.key_column} = {int(key)}" + (f" AND {where}" if where else "")
        return (
            f"SELECT {columns}, {dist} AS distance FROM {self.table} {alias} WHERE {cond} "
            f"ORDER BY distance, {alias}.{self.id_column} LIMIT $2"
        )

    # -- on a connection --------------------------------------------------------------------------

    async def configure(self, conn: Any) -> None:
        """Apply :meth:`session_settings` to a connection not opened with them (once), and with
        ``register_codec`` give it the binary ``vector`` codec."""
        if conn in self._configured:
            return
        settings = self.session_settings()
        await conn.execute("; ".join(f"SET {k} = {v}" for k, v in settings.items()))
        if self.register_codec:
            await register_vector_codec(conn, self.vector_schema)
        self._configured.add(conn)

    async def search(
        self,
        conn: Any,
        key: int,
        dims: int,
        query: Sequence[float] | bytes,
        k: int,
        *,
        columns: str,
        alias: str = "t",
        where: str = "",
        params: Sequence[Any] = (),
        threshold: float | None = None,
    ) -> list[tuple[Any, float]]:
        """``(row, cosine similarity)`` of the ``k`` nearest rows of the collection, best
        first (ties by id, the first of ``columns``); ``threshold`` drops worse ones."""
        if k <= 0:
            return []
        sql = self.search_sql(key, dims, columns=columns, alias=alias, where=where)
        if self.binary_query:
            vec: Any = query if isinstance(query, bytes) else pack(query)
        else:
            vec = to_floats(query)
        args = (vec, k, *params)
        if k <= self.ef_search:
            rows = await conn.fetch(sql, *args)
        else:  # more candidates than the session's ef_search: raise it for this search
            async with conn.transaction():
                await conn.execute(f"SET LOCAL hnsw.ef_search = {min(int(k), 1000)}")
                rows = await conn.fetch(sql, *args)
        out = []
        for r in rows:
            d = r[-1]
            score = 0.0 if d is None or math.isnan(d) else 1.0 - float(d)
            if threshold is None or score >= threshold:
                out.append((r, score))
        out.sort(key=lambda t: (-t[1], t[0][0]))  # iterative scans may be slightly out of order
        return out

    async def index_exists(self, conn: Any, key: int) -> bool:
        """Whether the collection's index exists and is valid."""
        found = await conn.fetchval(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = $1 AND n.nspname = coalesce($2, current_schema())",
            self.index_name(key),
            self.index_schema,
        )
        return bool(found)

    async def build(self, conn: Any, key: int, dims: int, *, work_mem: str = "256MB") -> None:
        """Build the collection's index now (more memory for the build; an invalid index a
        failed build left is replaced). Nothing for sizes that cannot be indexed."""
        if not self.indexable(dims):
            return
        if await conn.fetchval(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = $1 AND n.nspname = coalesce($2, current_schema())",
            self.index_name(key),
            self.index_schema,
        ):
            await conn.execute(self.drop_index_sql(key))
        await conn.execute(f"SET maintenance_work_mem = '{work_mem}'")
        try:
            await conn.execute(self.create_index_sql(key, dims))
        finally:
            await conn.execute("RESET maintenance_work_mem")
