"""SQL memory: working memory, user memories and message embeddings (pgvector or an exact
scan), with their tables."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa

from ...errors import NotFound, UserError
from ...messages import Message
from .. import _logic as L
from .._json import dumps, text_in, text_out
from .._vec import cosine, norm, pack, rank_memories, unpack, vector_literal
from ..base import MemoryStore, MessageEmbedding, Scope
from ..records import MessageHit, UserMemory
from ._engine import Engine, PgVector
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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._vec_table: sa.Table | None = None

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
        for it in items:
            L.check_id("session_id", it.session_id)
            L.check_opt_id("run_id", it.run_id)
            L.check_opt_id("user_id", it.user_id)
        await self.engine.ready()
        now = time.time()
        rows = [
            {
                "session_id": it.session_id,
                "run_id": it.run_id,
                "user_id": it.user_id,
                "message": dumps(it.message.to_dict(), "message"),
                "dims": len(it.embedding),
                "embedding": pack(it.embedding),
                "created_at": now,
            }
            for it in items
        ]
        if self.engine.pgvector:
            for r, it in zip(rows, items, strict=True):
                r["vec_text"] = vector_literal(it.embedding)
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
        await self.engine.ready()
        pgvector = self.engine.pgvector
        t = self._vt() if pgvector else _me
        conds: list[Any] = [t.c.dims == len(embedding)]
        if session_id is not None:
            conds.append(t.c.session_id == session_id)
        if user_id is not None:
            conds.append(t.c.user_id == user_id)
        if exclude:
            conds.append(sa.or_(t.c.run_id.is_(None), t.c.run_id.not_in(exclude)))
        cols = [t.c.id, t.c.session_id, t.c.run_id, t.c.user_id, t.c.message]
        if pgvector:
            vtype = self.engine.vector_type
            dist = t.c.embedding_vec.op(vtype.cosine_operator(), return_type=sa.Float)(
                _vec_param("q", vtype)
            )
            q = sa.select(*cols, dist.label("dist")).where(*conds)
            if threshold is not None:
                q = q.where(dist <= 1.0 - threshold)
            q = q.order_by(dist, t.c.id).limit(top_k)
            async with self.engine.tx(False) as conn:
                rows = (await conn.execute(q, {"q": vector_literal(embedding)})).all()
            return [self._hit(r._mapping, 1.0 - float(r._mapping["dist"])) for r in rows]
        # exact fallback: cosine over the scope's vectors, then fetch the winners' messages
        async with self.engine.tx(False) as conn:
            vecs = (await conn.execute(sa.select(t.c.id, t.c.embedding).where(*conds))).all()
            qn = norm(embedding)
            scored = []
            for rid, blob in vecs:
                s = cosine(embedding, unpack(blob), qn)
                if threshold is None or s >= threshold:
                    scored.append((s, rid))
            scored.sort(key=lambda x: (-x[0], x[1]))
            best = scored[:top_k]
            if not best:
                return []
            full = (
                await conn.execute(sa.select(*cols).where(t.c.id.in_([i for _, i in best])))
            ).all()
        by_id = {r._mapping["id"]: r._mapping for r in full}
        return [self._hit(by_id[i], s) for s, i in best if i in by_id]

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
