"""PostgreSQL knowledge store: pgvector with an HNSW index per knowledge base, and
PostgreSQL full-text search (a generated ``tsvector`` with a GIN index), through ``asyncpg``
(the ``postgres`` extra).

Vectors live in one ``vector`` column; each knowledge base gets a partial HNSW index on
``embedding::vector(<its dims>)`` (cosine), so bases of different embedders share a table and
each still has a usable index. Filtered vector searches use pgvector's iterative index scans,
so a selective filter still returns ``k`` hits. The index, its statements and the search are
:class:`~vivace.storage.vectors.PgVectorIndex`, the one memory's recall uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ...errors import NotFound, StorageError, UserError
from ...storage.vectors import PgVectorIndex, register_vector_codec
from ...storage.vectors import quote_ident as _ident
from ..errors import missing
from ..filters import Condition
from .base import BaseInfo, DocumentWrite, KnowledgeStore, StoredChunk, query_terms
from .sqlsql import pg_conditions

__all__ = ["PostgresKnowledgeStore"]


class PostgresKnowledgeStore(KnowledgeStore):
    """Knowledge bases in PostgreSQL at ``url`` (tables in ``schema``, or the URL's
    ``?schema=``; ``text_config`` is
    the full-text search configuration, e.g. ``"english"`` or ``"simple"``). HNSW parameters:
    ``m`` and ``ef_construction`` when an index is built, ``ef_search`` per query."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        text_config: str = "english",
        m: int = 16,
        ef_construction: int = 64,
        ef_search: int = 64,
        pool_size: int = 8,
    ) -> None:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        self.url = url
        parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        query = parse_qsl(parts.query, keep_blank_values=True)
        in_url = [v for k, v in query if k == "schema"]
        if in_url and schema == "public":  # postgresql://.../db?schema=kb (as for storage URLs)
            schema = in_url[-1]
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        self._dsn = urlunsplit(parts._replace(query=rest))
        self.schema = schema
        self.text_config = text_config
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.pool_size = pool_size
        self._pools: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._schema_ready = False
        self._vns = "public"
        self._ids: dict[str, tuple[int, int]] = {}
        self._index: PgVectorIndex | None = None

    @property
    def _s(self) -> str:
        return _ident(self.schema)

    @property
    def vectors(self) -> PgVectorIndex:
        """The vector index of the chunks: one partial HNSW index per knowledge base."""
        if self._index is None or self._index.vector_schema != self._vns:
            self._index = PgVectorIndex(
                f"{self._s}.kb_chunks",
                column="embedding",
                key_column="kb",
                index_prefix="kb_chunks_hnsw_",
                index_schema=self.schema,
                vector_schema=self._vns,
                m=self.m,
                ef_construction=self.ef_construction,
                ef_search=self.ef_search,
                binary_query=True,  # every connection has the binary codec (_init_conn)
            )
        return self._index

    async def _init_conn(self, conn: Any) -> None:
        await register_vector_codec(conn, self._vns)

    async def _get_pool(self) -> Any:
        """The connection pool of the running event loop (asyncpg pools belong to one loop;
        sync wrappers and worker threads may run their own)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            pool = self._pools.get(loop)
            if pool is not None:
                return pool
            try:
                import asyncpg
            except ImportError:
                raise missing("asyncpg", "postgres", "the PostgreSQL knowledge store") from None
            if not self._schema_ready:
                await self._setup(asyncpg)
            # every session searches HNSW with ef_search candidates and iterative scans (so a
            # filtered search still fills k; unfiltered searches are unaffected)
            settings = self.vectors.session_settings()
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self.pool_size,
                init=self._init_conn,
                server_settings=settings,
            )
            self._pools[loop] = pool
            return pool

    async def _setup(self, asyncpg: Any) -> None:
        try:
            conn = await asyncpg.connect(self._dsn)
        except Exception as exc:
            raise StorageError(f"knowledge store: cannot connect to PostgreSQL ({exc})") from exc
        find = (
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        try:
            ns = await conn.fetchval(find)
            if ns is None:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                ns = await conn.fetchval(find)
            self._vns = ns
            s, v = self._s, _ident(ns)
            await conn.execute("SELECT pg_advisory_lock(hashtext('vivace-knowledge-schema'))")
            try:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
                await conn.execute(
                    f"""
                    CREATE TABLE IF NOT EXISTS {s}.kb_bases(
                        id serial PRIMARY KEY, name text NOT NULL UNIQUE, dims int NOT NULL,
                        embedder text NOT NULL, filters jsonb NOT NULL, created_at float8 NOT NULL);
                    CREATE TABLE IF NOT EXISTS {s}.kb_documents(
                        kb int NOT NULL, source text NOT NULL, hash text NOT NULL, metadata jsonb NOT NULL,
                        chunks int NOT NULL, updated_at float8 NOT NULL, PRIMARY KEY (kb, source));
                    CREATE TABLE IF NOT EXISTS {s}.kb_chunks(
                        id bigserial PRIMARY KEY, kb int NOT NULL, source text NOT NULL,
                        position int NOT NULL, content text NOT NULL, metadata jsonb NOT NULL,
                        start int NOT NULL, "end" int NOT NULL, embedding {v}.vector NOT NULL,
                        tsv tsvector GENERATED ALWAYS AS (to_tsvector({_lit(self.text_config)}::regconfig, content)) STORED);
                    CREATE INDEX IF NOT EXISTS kb_chunks_source ON {s}.kb_chunks(kb, source);
                    CREATE INDEX IF NOT EXISTS kb_chunks_tsv ON {s}.kb_chunks USING gin(tsv);
                    CREATE TABLE IF NOT EXISTS {s}.kb_jobs(
                        job_id text PRIMARY KEY, data jsonb NOT NULL, updated_at float8 NOT NULL);
                    """
                )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext('vivace-knowledge-schema'))")
        except Exception as exc:
            raise StorageError(f"knowledge store: cannot set up the tables ({exc})") from exc
        finally:
            await conn.close()
        self._schema_ready = True

    async def _base_id(
        self, conn: Any, name: str, *, required: bool = True
    ) -> tuple[int, int] | None:
        got = self._ids.get(name)
        if got is not None:
            return got
        row = await conn.fetchrow(f"SELECT id, dims FROM {self._s}.kb_bases WHERE name = $1", name)
        if row is None:
            if required:
                raise NotFound(f"no knowledge base {name!r}", knowledge_base=name)
            return None
        self._ids[name] = (row[0], row[1])
        return self._ids[name]

    async def _info(self, conn: Any, row: Any) -> BaseInfo:
        n = await conn.fetchrow(
            f"SELECT count(*), coalesce(sum(chunks), 0) FROM {self._s}.kb_documents WHERE kb = $1",
            row["id"],
        )
        return BaseInfo(
            row["name"], row["dims"], row["embedder"], json.loads(row["filters"]), int(n[0]), int(n[1]),
            row["created_at"],
        )  # fmt: skip

    async def ensure_base(
        self, name: str, *, dims: int, embedder: str, filters: Mapping[str, str]
    ) -> BaseInfo:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"vivace-kb:{self.schema}:{name}"
            )
            row = await conn.fetchrow(f"SELECT * FROM {self._s}.kb_bases WHERE name = $1", name)
            if row is None:
                row = await conn.fetchrow(
                    f"INSERT INTO {self._s}.kb_bases(name, dims, embedder, filters, created_at) "
                    "VALUES ($1, $2, $3, $4, $5) RETURNING *",
                    name, dims, embedder, json.dumps(dict(filters)), time.time(),
                )  # fmt: skip
                await self._create_index(conn, row["id"], dims)
            elif row["dims"] != dims:
                raise UserError(
                    f"knowledge base {name!r} holds {row['dims']}-dimension vectors; this embedder makes {dims}",
                    knowledge_base=name,
                )
            else:
                merged = {**json.loads(row["filters"]), **filters}
                if merged != json.loads(row["filters"]):
                    row = await conn.fetchrow(
                        f"UPDATE {self._s}.kb_bases SET filters = $1 WHERE id = $2 RETURNING *",
                        json.dumps(merged), row["id"],
                    )  # fmt: skip
                # an index a crashed bulk load dropped is rebuilt (unless a load is running)
                if await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock_shared(hashtext($1))", self._bulk_key(name)
                ):
                    await self._create_index(conn, row["id"], row["dims"])
            return await self._info(conn, row)

    async def _create_index(self, conn: Any, kid: int, dims: int) -> None:
        if self.vectors.indexable(dims):  # larger vectors are searched exactly
            await conn.execute(self.vectors.create_index_sql(kid, dims))

    def _bulk_key(self, name: str) -> str:
        return f"vivace-kb-bulk:{self.schema}:{name}"

    @contextlib.asynccontextmanager
    async def bulk(self, name: str) -> AsyncIterator[None]:
        """A large ingest into an empty knowledge base: its HNSW index is dropped and built
        once at the end (much faster than growing it row by row). Searches meanwhile are
        exact scans; another process's bulk load into the same base makes this a plain one."""
        pool = await self._get_pool()
        conn = await pool.acquire()
        try:
            key = self._bulk_key(name)
            got = await self._base_id(conn, name, required=False)
            if got is None or not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", key
            ):
                yield
                return
            kid, dims = got
            try:
                empty = not await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {self._s}.kb_chunks WHERE kb = $1)", kid
                )
                if empty:
                    await conn.execute(self.vectors.drop_index_sql(kid))
                try:
                    yield
                finally:
                    if empty:
                        await self.vectors.build(conn, kid, dims)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
        finally:
            await pool.release(conn)

    async def get_base(self, name: str) -> BaseInfo | None:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT * FROM {self._s}.kb_bases WHERE name = $1", name)
            return await self._info(conn, row) if row else None

    async def list_bases(self) -> list[BaseInfo]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT * FROM {self._s}.kb_bases ORDER BY name")
            return [await self._info(conn, r) for r in rows]

    async def drop_base(self, name: str) -> bool:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            got = await self._base_id(conn, name, required=False)
            self._ids.pop(name, None)
            if got is None:
                return False
            kid = got[0]
            await conn.execute(self.vectors.drop_index_sql(kid))
            await conn.execute(f"DELETE FROM {self._s}.kb_chunks WHERE kb = $1", kid)
            await conn.execute(f"DELETE FROM {self._s}.kb_documents WHERE kb = $1", kid)
            await conn.execute(f"DELETE FROM {self._s}.kb_bases WHERE id = $1", kid)
            return True

    async def document_hashes(self, name: str, sources: Sequence[str]) -> dict[str, str]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            got = await self._base_id(conn, name, required=False)
            if got is None or not sources:
                return {}
            rows = await conn.fetch(
                f"SELECT source, hash FROM {self._s}.kb_documents WHERE kb = $1 AND source = ANY($2::text[])",
                got[0], list(sources),
            )  # fmt: skip
            return {r[0]: r[1] for r in rows}

    async def write_documents(self, name: str, docs: Sequence[DocumentWrite]) -> None:
        if not docs:
            return
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            kid, dims = await self._base_id(conn, name)  # type: ignore[misc]
            for d in docs:
                if len(d.vectors) != len(d.chunks):
                    raise UserError(
                        f"{d.source}: {len(d.chunks)} chunks but {len(d.vectors)} vectors"
                    )
                for v in d.vectors:
                    if len(v) != 4 * dims:
                        raise UserError(
                            f"{d.source}: a vector has {len(v) // 4} dimensions, not {dims}"
                        )
            now = time.time()
            rows = [
                (kid, d.source, c.position, c.text.replace("\x00", ""), json.dumps(c.metadata, default=str),
                 c.start, c.end, v)
                for d in docs
                for c, v in zip(d.chunks, d.vectors, strict=True)
            ]  # fmt: skip
            try:
                async with conn.transaction():
                    sources = [d.source for d in docs]
                    await conn.execute(
                        f"DELETE FROM {self._s}.kb_chunks WHERE kb = $1 AND source = ANY($2::text[])",
                        kid,
                        sources,
                    )
                    await conn.execute(
                        f"DELETE FROM {self._s}.kb_documents WHERE kb = $1 AND source = ANY($2::text[])",
                        kid,
                        sources,
                    )
                    await conn.copy_records_to_table(
                        "kb_chunks",
                        schema_name=self.schema,
                        columns=[
                            "kb",
                            "source",
                            "position",
                            "content",
                            "metadata",
                            "start",
                            "end",
                            "embedding",
                        ],
                        records=rows,
                    )
                    await conn.executemany(
                        f"INSERT INTO {self._s}.kb_documents VALUES ($1, $2, $3, $4, $5, $6)",
                        [
                            (
                                kid,
                                d.source,
                                d.hash,
                                json.dumps(d.metadata, default=str),
                                len(d.chunks),
                                now,
                            )
                            for d in docs
                        ],
                    )
            except Exception as exc:
                if isinstance(exc, UserError | NotFound):
                    raise
                raise StorageError(
                    f"knowledge store: writing failed ({type(exc).__name__}: {exc})"
                ) from exc

    async def delete_documents(
        self, name: str, *, sources: Sequence[str] | None = None, conds: Sequence[Condition] = ()
    ) -> int:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            got = await self._base_id(conn, name, required=False)
            if got is None or (sources is not None and not sources):
                return 0
            kid = got[0]
            where, params = "d.kb = $1", list[Any]([kid])
            if sources is not None:
                params.append(list(sources))
                where += f" AND d.source = ANY(${len(params)}::text[])"
            if conds:
                sql, p = pg_conditions(conds, "d", len(params) + 1)
                where += " AND " + sql
                params += p
            async with conn.transaction():
                picked = [
                    r[0]
                    for r in await conn.fetch(
                        f"SELECT d.source FROM {self._s}.kb_documents d WHERE {where}", *params
                    )
                ]
                if picked:
                    await conn.execute(
                        f"DELETE FROM {self._s}.kb_chunks WHERE kb = $1 AND source = ANY($2::text[])",
                        kid,
                        picked,
                    )
                    await conn.execute(
                        f"DELETE FROM {self._s}.kb_documents WHERE kb = $1 AND source = ANY($2::text[])",
                        kid,
                        picked,
                    )
            return len(picked)

    async def list_documents(
        self, name: str, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            got = await self._base_id(conn, name, required=False)
            if got is None:
                return []
            rows = await conn.fetch(
                f"SELECT source, hash, chunks, metadata, updated_at FROM {self._s}.kb_documents "
                "WHERE kb = $1 ORDER BY source LIMIT $2 OFFSET $3",
                got[0], limit, offset,
            )  # fmt: skip
            return [
                {
                    "source": r[0],
                    "hash": r[1],
                    "chunks": r[2],
                    "metadata": json.loads(r[3]),
                    "updated_at": r[4],
                }
                for r in rows
            ]

    async def vector_search(
        self, name: str, vector: bytes, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            kid, dims = await self._base_id(conn, name)  # type: ignore[misc]
            if len(vector) != 4 * dims:
                raise UserError(f"the query vector has {len(vector) // 4} dimensions, not {dims}")
            where, params = "", list[Any]()
            if conds:
                where, params = pg_conditions(conds, "c", 3)
            found = await self.vectors.search(
                conn, kid, dims, vector, k, alias="c", where=where, params=params,
                columns="c.id, c.source, c.position, c.content, c.metadata",
            )  # fmt: skip
        return [(StoredChunk(r[0], r[1], r[2], r[3], r[4]), score) for r, score in found]

    async def text_search(
        self, name: str, query: str, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            kid, _ = await self._base_id(conn, name)  # type: ignore[misc]
            cfg = _lit(self.text_config)
            where, params = f"c.kb = {int(kid)} AND c.tsv @@ q.q", [" | ".join(terms), k]
            if conds:
                sql, p = pg_conditions(conds, "c", 3)
                where += " AND " + sql
                params += p
            rows = await conn.fetch(
                f"SELECT c.id, c.source, c.position, c.content, c.metadata, ts_rank_cd(c.tsv, q.q) AS s "
                f"FROM {self._s}.kb_chunks c, to_tsquery({cfg}::regconfig, $1) AS q(q) "
                f"WHERE {where} ORDER BY s DESC, c.id LIMIT $2",
                *params,
            )
        return [(StoredChunk(r[0], r[1], r[2], r[3], r[4]), float(r[5])) for r in rows]

    async def save_job(self, job: dict[str, Any]) -> None:
        pool = await self._get_pool()
        now = time.time()
        async with pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self._s}.kb_jobs VALUES ($1, $2::jsonb, $3) ON CONFLICT (job_id) "
                "DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at",
                job["job_id"], json.dumps(job, default=str), now,
            )  # fmt: skip
            await conn.execute(
                f"DELETE FROM {self._s}.kb_jobs WHERE updated_at < $1", now - 7 * 86400
            )

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            data = await conn.fetchval(
                f"SELECT data FROM {self._s}.kb_jobs WHERE job_id = $1", job_id
            )
        return json.loads(data) if data is not None else None

    async def close(self) -> None:
        """Close the pool of this event loop; pools of other loops are terminated."""
        try:
            current: Any = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        pools = list(self._pools.items())
        self._pools = weakref.WeakKeyDictionary()
        for loop, pool in pools:
            if loop is current:
                await pool.close()
            else:
                pool.terminate()


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
