"""SQL memory: working memory, user memories and message embeddings, with their tables.

Message search goes through the vector index the knowledge stores share
(:mod:`vivace.storage.vectors`): on PostgreSQL pgvector with one partial HNSW index per
embedding size; on SQLite sqlite-vec when Python's ``sqlite3`` can load it; otherwise an
exact scan of the scope's vectors in this process.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa

from ...errors import NotFound, UserError
from ...messages import Message
from .. import _logic as L
from .._json import dumps, text_in, text_out
from .._vec import pack, rank_memories, unpack
from ..base import MemoryStore, MessageEmbedding, Scope
from ..records import MessageHit, UserMemory
from ..vectors import ExactIndex, PgVectorIndex, check_vector, vector_literal
from ..vectors import sqlite as vec_sqlite
from ._engine import Engine, PgVector, PostgresEngine
from .schema import ID, BigId, Time, metadata

__all__ = ["SQLMemory", "message_embeddings", "user_memories", "working_memory"]

working_memory = sa.Table(
    "vivace_working_memory",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("owner_id", ID, primary_key=True),
    sa.Column("content", sa.Text, nullable=False),  # JSON string (v4)
    sa.Column("updated_at", Time, nullable=False),
    info={"since": 1},
)

user_memories = sa.Table(
    "vivace_user_memories",
    metadata,
    sa.Column("memory_id", ID, primary_key=True),
    sa.Column("user_id", ID, nullable=False),
    sa.Column("agent_id", ID),
    sa.Column("content", sa.Text, nullable=False),  # JSON string (v4)
    sa.Column("topics", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_vivace_user_memories_user", "user_id", "created_at"),
    info={"since": 1},
)

message_embeddings = sa.Table(  # v2
    "vivace_message_embeddings",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("session_id", ID, nullable=False),
    sa.Column("run_id", ID),
    sa.Column("user_id", ID),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("dims", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # float32 little-endian
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_vivace_msg_emb_session", "session_id", "id"),
    sa.Index("ix_vivace_msg_emb_user", "user_id"),
    info={"since": 2, "vector_column": "embedding_vec"},  # pgvector's copy, when available
)

_wm, _um, _me = working_memory, user_memories, message_embeddings
_log = logging.getLogger("vivace.storage")
_MSG_COLUMNS = ("id", "session_id", "run_id", "user_id", "message")


def _vec_param(name: str, vtype: PgVector) -> sa.ColumnElement[Any]:
    return sa.cast(sa.bindparam(name, type_=sa.Text), vtype)


def _memory_from_row(m: Any) -> UserMemory:
    return UserMemory(
        memory_id=m["memory_id"],
        user_id=m["user_id"],
        content=text_out(m["content"]) or "",
        agent_id=m["agent_id"],
        topics=json.loads(m["topics"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class SQLMemory(MemoryStore):
    """Memory in SQL. Free text is stored as JSON strings (any character round-trips)."""

    AUTO_INDEX_ROWS = 10_000
    """PostgreSQL: a missing HNSW index for an embedding size is built on first use when the
    table holds at most this many vectors of that size (an upgraded database with more is
    searched exactly until :meth:`build_vector_indexes`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._vec_table: sa.Table | None = None
        self._pg_index: PgVectorIndex | None = None
        self._indexed: dict[int, bool] = {}  # PostgreSQL: embedding size -> index checked

    async def get_working_memory(self, scope: Scope, owner_id: str) -> str | None:
        L.check_scope(scope)
        L.check_id("owner_id", owner_id)
        async with self.engine.tx(False) as conn:
            stored = (
                await conn.execute(
                    sa.select(_wm.c.content).where(_wm.c.scope == scope, _wm.c.owner_id == owner_id)
                )
            ).scalar()
        return text_out(stored)

    async def set_working_memory(self, scope: Scope, owner_id: str, content: str) -> None:
        L.check_scope(scope)
        L.check_id("owner_id", owner_id)
        ins = self.engine.insert(_wm).values(
            scope=scope, owner_id=owner_id, content=text_in(content), updated_at=time.time()
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[_wm.c.scope, _wm.c.owner_id],
            set_={"content": ins.excluded.content, "updated_at": ins.excluded.updated_at},
        )
        async with self.engine.tx(True) as conn:
            await conn.execute(stmt)

    async def delete_working_memory(self, scope: Scope, owner_id: str) -> bool:
        L.check_scope(scope)
        L.check_id("owner_id", owner_id)
        async with self.engine.tx(True) as conn:
            res = await conn.execute(
                sa.delete(_wm).where(_wm.c.scope == scope, _wm.c.owner_id == owner_id)
            )
        return bool(res.rowcount)

    async def add_user_memory(
        self, memory: UserMemory, *, embedding: Sequence[float] | None = None
    ) -> UserMemory:
        L.check_id("memory_id", memory.memory_id)
        L.check_id("user_id", memory.user_id)
        L.check_opt_id("agent_id", memory.agent_id)
        values = {
            "memory_id": memory.memory_id,
            "user_id": memory.user_id,
            "agent_id": memory.agent_id,
            "content": text_in(memory.content),
            "topics": dumps([str(t) for t in memory.topics], "topics"),
            "embedding": pack(embedding) if embedding is not None else None,
            "created_at": memory.created_at,
            "updated_at": memory.updated_at,
        }
        async with self.engine.tx(True) as conn:
            await conn.execute(sa.insert(_um).values(**values))
        return _memory_from_row(values)

    async def get_user_memory(self, memory_id: str, *, user_id: str) -> UserMemory | None:
        L.check_id("memory_id", memory_id)
        L.check_id("user_id", user_id)
        async with self.engine.tx(False) as conn:
            row = (
                await conn.execute(
                    sa.select(_um).where(_um.c.memory_id == memory_id, _um.c.user_id == user_id)
                )
            ).first()
        return _memory_from_row(row._mapping) if row is not None else None

    async def list_user_memories(
        self, user_id: str, *, agent_id: str | None = None, limit: int = 100
    ) -> list[UserMemory]:
        L.check_id("user_id", user_id)
        L.check_opt_id("agent_id", agent_id)
        q = sa.select(_um).where(_um.c.user_id == user_id)
        if agent_id is not None:
            q = q.where(_um.c.agent_id == agent_id)
        q = q.order_by(_um.c.created_at.desc()).limit(limit)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(q)).all()
        return [_memory_from_row(r._mapping) for r in rows]

    async def search_user_memories(
        self, user_id: str, query: str, *, limit: int = 5, embedding: Sequence[float] | None = None
    ) -> list[UserMemory]:
        L.check_id("user_id", user_id)
        async with self.engine.tx(False) as conn:
            rows = (await conn.execute(sa.select(_um).where(_um.c.user_id == user_id))).all()
        dicts = []
        for r in rows:
            d = _memory_from_row(r._mapping).to_dict()
            emb = r._mapping["embedding"]
            d["embedding"] = list(unpack(emb)) if emb is not None else None
            dicts.append(d)
        return rank_memories(dicts, query, embedding, limit)

    async def update_user_memory(
        self,
        memory_id: str,
        *,
        user_id: str,
        content: str | None = None,
        topics: Sequence[str] | None = None,
        embedding: Sequence[float] | None = None,
    ) -> UserMemory:
        L.check_id("memory_id", memory_id)
        L.check_id("user_id", user_id)
        values: dict[str, Any] = {"updated_at": time.time()}
        if content is not None:
            values["content"] = text_in(content)
        if topics is not None:
            values["topics"] = dumps([str(t) for t in topics], "topics")
        if embedding is not None:
            values["embedding"] = pack(embedding)
        cond = (_um.c.memory_id == memory_id, _um.c.user_id == user_id)
        async with self.engine.tx(True) as conn:
            res = await conn.execute(sa.update(_um).where(*cond).values(**values))
            if not res.rowcount:
                raise NotFound(f"no memory {memory_id!r} for this user", memory_id=memory_id)
            row = (await conn.execute(sa.select(_um).where(*cond))).first()
        assert row is not None
        return _memory_from_row(row._mapping)

    async def delete_user_memory(self, memory_id: str, *, user_id: str) -> bool:
        L.check_id("memory_id", memory_id)
        L.check_id("user_id", user_id)
        async with self.engine.tx(True) as conn:
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
                sa.Column(_me.info["vector_column"], self.engine.vector_type),
            )
        return self._vec_table

    async def add_message_embeddings(self, items: Sequence[MessageEmbedding]) -> None:
        if not items:
            return
        vectors = []
        for it in items:
            L.check_id("session_id", it.session_id)
            L.check_opt_id("run_id", it.run_id)
            L.check_opt_id("user_id", it.user_id)
            vectors.append(check_vector(it.embedding, "a message embedding"))
        await self.engine.ready()
        now = time.time()
        rows: list[dict[str, Any]] = [
            {
                "session_id": it.session_id,
                "run_id": it.run_id,
                "user_id": it.user_id,
                "message": dumps(it.message.to_dict(), "message"),
                "dims": len(vec),
                "embedding": pack(vec),
                "created_at": now,
            }
            for it, vec in zip(items, vectors, strict=True)
        ]
        if self.engine.pgvector:
            for dims in sorted({len(v) for v in vectors}):
                await self._ensure_pg_index(dims)  # before the rows: a new index starts empty
            for r in rows:
                r["vec_text"] = vector_literal(r["embedding"])
            stmt = sa.insert(self._vt()).values(
                {
                    **{k: sa.bindparam(k) for k in rows[0] if k != "vec_text"},
                    "embedding_vec": _vec_param("vec_text", self.engine.vector_type),
                }
            )
        else:
            stmt = sa.insert(_me)
        async with self.engine.tx(True) as conn:
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
        L.check_opt_id("session_id", session_id)
        L.check_opt_id("user_id", user_id)
        exclude = L.check_ids("run_id", exclude_run_ids)
        if not len(embedding) or top_k <= 0:
            return []
        embedding = check_vector(embedding, "the query embedding")
        await self.engine.ready()
        dims = len(embedding)
        if isinstance(self.engine, PostgresEngine) and self.engine.pgvector:
            return await self._search_pgvector(
                embedding, dims, session_id, user_id, top_k, threshold, exclude
            )
        if self.engine.dialect == "sqlite" and vec_sqlite.sqlite3_can_load():
            query = pack(embedding)

            def run(conn: sa.Connection) -> list[MessageHit] | None:
                return self._search_sqlite_vec(
                    conn, query, dims, session_id, user_id, top_k, threshold, exclude
                )

            async with self.engine.tx(False) as conn:
                hits = await conn.run_sync(run)
            if hits is not None:
                return hits
        return await self._search_exact(
            embedding, dims, session_id, user_id, top_k, threshold, exclude
        )

    # -- the three ways a message search runs ----------------------------------------------

    def _pg(self) -> PgVectorIndex:
        if self._pg_index is None:
            self._pg_index = PgVectorIndex(
                _me.name,
                column=_me.info["vector_column"],
                key_column="dims",
                index_prefix="ix_vivace_msg_emb_hnsw_",
                vector_schema=self.engine.vector_type.schema,
                register_codec=True,  # the query goes as a binary vector, not a real[]
            )
        return self._pg_index

    async def _search_pgvector(
        self,
        embedding: Sequence[float],
        dims: int,
        session_id: str | None,
        user_id: str | None,
        top_k: int,
        threshold: float | None,
        exclude: Sequence[str],
    ) -> list[MessageHit]:
        """pgvector: the HNSW index of this embedding size, or the scope's B-tree index and
        an exact sort when the planner finds the scope small (a session, most users)."""
        assert isinstance(self.engine, PostgresEngine)
        await self._ensure_pg_index(dims)
        where, params = [], list[Any]()
        for col, value in (("session_id", session_id), ("user_id", user_id)):
            if value is not None:
                params.append(value)
                where.append(f"t.{col} = ${len(params) + 2}::varchar")
        if exclude:
            params.append(list(exclude))
            where.append(f"(t.run_id IS NULL OR t.run_id <> ALL(${len(params) + 2}::varchar[]))")
        index = self._pg()
        async with self.engine.driver() as conn:
            await index.configure(conn)
            found = await index.search(
                conn, dims, dims, embedding, top_k,
                columns=", ".join(f"t.{c}" for c in _MSG_COLUMNS),
                where=" AND ".join(where), params=params, threshold=threshold,
            )  # fmt: skip
        return [self._hit(r, score) for r, score in found]

    def _search_sqlite_vec(
        self,
        conn: sa.Connection,
        query: bytes,
        dims: int,
        session_id: str | None,
        user_id: str | None,
        top_k: int,
        threshold: float | None,
        exclude: Sequence[str],
    ) -> list[MessageHit] | None:
        """sqlite-vec on the storage's own connection: the scope's rows (by their indexes),
        ``vec_distance_cosine`` over the BLOB column, the nearest ``top_k`` (None: sqlite-vec
        could not be loaded here)."""
        where, params = ["dims = ?"], list[Any]([dims])
        for col, value in (("session_id", session_id), ("user_id", user_id)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if exclude:
            where.append(f"(run_id IS NULL OR run_id NOT IN ({', '.join('?' * len(exclude))}))")
            params += exclude
        sql = vec_sqlite.blob_search_sql(
            _me.name, blob="embedding", columns=_MSG_COLUMNS, where=" AND ".join(where)
        )
        args = vec_sqlite.blob_search_params(query, params, top_k)
        db: Any = conn.connection.driver_connection
        try:
            rows = db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:  # a connection sqlite-vec is not loaded into
            if "no such function" not in str(exc):
                raise
            if not vec_sqlite.load_sqlite_vec(db):
                return None
            rows = db.execute(sql, args).fetchall()
        hits = []
        for r in rows:
            score = 1.0 - float(r[-1])
            if threshold is None or score >= threshold:
                hits.append(self._hit(dict(zip(_MSG_COLUMNS, r, strict=False)), score))
        return hits

    async def _search_exact(
        self,
        embedding: Sequence[float],
        dims: int,
        session_id: str | None,
        user_id: str | None,
        top_k: int,
        threshold: float | None,
        exclude: Sequence[str],
    ) -> list[MessageHit]:
        """No vector support in the database: the scope's vectors (read by its indexes) in an
        exact index in this process, then the winners' messages."""
        t = _me
        conds: list[Any] = [t.c.dims == dims]
        if session_id is not None:
            conds.append(t.c.session_id == session_id)
        if user_id is not None:
            conds.append(t.c.user_id == user_id)
        if exclude:
            conds.append(sa.or_(t.c.run_id.is_(None), t.c.run_id.not_in(exclude)))
        async with self.engine.tx(False) as conn:
            vecs = (await conn.execute(sa.select(t.c.id, t.c.embedding).where(*conds))).all()
            best = ExactIndex.from_blobs(dims, vecs).search(embedding, top_k, threshold=threshold)
            if not best:
                return []
            cols = [t.c[c] for c in _MSG_COLUMNS]
            full = (
                await conn.execute(sa.select(*cols).where(t.c.id.in_([i for i, _ in best])))
            ).all()
        by_id = {r._mapping["id"]: r._mapping for r in full}
        return [self._hit(by_id[i], s) for i, s in best if i in by_id]

    # -- PostgreSQL: one HNSW index per embedding size ---------------------------------------

    async def _ensure_pg_index(self, dims: int) -> None:
        """Make sure this embedding size has its HNSW index (once per process): found, or
        built now when the table holds at most :attr:`AUTO_INDEX_ROWS` vectors of the size
        (rows an older process stored without pgvector's copy get it first)."""
        if dims in self._indexed:
            return
        assert isinstance(self.engine, PostgresEngine)
        index = self._pg()
        if not index.indexable(dims):  # beyond HNSW's 2,000 dimensions: exact scans
            self._indexed[dims] = False
            return
        async with self.engine.driver() as conn:
            if await index.index_exists(conn, dims):
                self._indexed[dims] = True
                return
            if not self.engine.create_tables:
                self._indexed[dims] = False
                return
            async with conn.transaction():
                lock = f"vivace-msg-hnsw:{self.engine.schema or ''}:{dims}"
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock)
                if not await index.index_exists(conn, dims):
                    await self._backfill_vectors(conn, dims)
                    n = await conn.fetchval(
                        f"SELECT count(*) FROM (SELECT 1 FROM {_me.name} WHERE dims = {int(dims)} "
                        f"LIMIT {self.AUTO_INDEX_ROWS + 1}) AS s"
                    )
                    if n > self.AUTO_INDEX_ROWS:
                        _log.warning(
                            "%s holds more than %d message embeddings of %d dimensions and no "
                            "HNSW index for them: searched exactly until "
                            "storage.memory.build_vector_indexes() builds it",
                            _me.name, self.AUTO_INDEX_ROWS, dims,
                        )  # fmt: skip
                        self._indexed[dims] = False
                        return
                    await conn.execute(index.create_index_sql(dims, dims))
        self._indexed[dims] = True

    async def _backfill_vectors(self, conn: Any, dims: int, batch: int = 1000) -> None:
        """Give rows written without pgvector's copy (the extension came later) theirs."""
        table, column = _me.name, _me.info["vector_column"]
        vtype = self.engine.vector_type.get_col_spec()
        while True:
            rows = await conn.fetch(
                f"SELECT id, embedding FROM {table} WHERE dims = {int(dims)} "
                f"AND {column} IS NULL LIMIT {int(batch)}"
            )
            if not rows:
                return
            await conn.execute(
                f"UPDATE {table} AS t SET {column} = v.vec::{vtype} "
                "FROM unnest($1::bigint[], $2::text[]) AS v(id, vec) WHERE t.id = v.id",
                [r[0] for r in rows],
                [vector_literal(bytes(r[1])) for r in rows],
            )

    async def build_vector_indexes(self) -> list[int]:
        """PostgreSQL with pgvector: build the missing HNSW index of every embedding size
        stored (after an upgrade of a database with many message embeddings; it may take
        minutes for hundreds of thousands). Returns the sizes indexed now. Elsewhere a no-op."""
        await self.engine.ready()
        if not (isinstance(self.engine, PostgresEngine) and self.engine.pgvector):
            return []
        index = self._pg()
        built = []
        async with self.engine.driver() as conn:
            sizes = [r[0] for r in await conn.fetch(f"SELECT DISTINCT dims FROM {_me.name}")]
            for dims in sorted(sizes):
                if not index.indexable(dims) or await index.index_exists(conn, dims):
                    self._indexed[dims] = True
                    continue
                async with conn.transaction():
                    await self._backfill_vectors(conn, dims)
                await index.build(conn, dims, dims)
                self._indexed[dims] = True
                built.append(dims)
        return built

    async def message_neighbours(
        self, hit: MessageHit, *, before: int, after: int
    ) -> list[MessageHit]:
        cols = [_me.c.id, _me.c.session_id, _me.c.run_id, _me.c.user_id, _me.c.message]
        base = sa.select(*cols).where(_me.c.session_id == hit.session_id)
        async with self.engine.tx(False) as conn:
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
        L.check_id("session_id", session_id)
        async with self.engine.tx(True) as conn:
            await conn.execute(sa.delete(_me).where(_me.c.session_id == session_id))
            await conn.execute(
                sa.delete(_wm).where(
                    _wm.c.scope.in_(("session", "summary")), _wm.c.owner_id == session_id
                )
            )

    async def prune(self, before: float) -> int:
        async with self.engine.tx(True) as conn:
            a = await conn.execute(sa.delete(_me).where(_me.c.created_at < before))
            b = await conn.execute(sa.delete(_um).where(_um.c.updated_at < before))
        return int(a.rowcount or 0) + int(b.rowcount or 0)
