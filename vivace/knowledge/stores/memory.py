"""In-memory knowledge store: exact search (the vector index memory's recall uses in memory
too, :class:`~vivace.storage.vectors.ExactIndex`), for tests and small corpora (not shared
across processes)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import UserError
from ...storage.vectors import ExactIndex
from ..filters import Condition, matches
from .base import BaseInfo, DocumentWrite, KnowledgeStore, StoredChunk, query_terms

__all__ = ["InMemoryKnowledgeStore"]


class _Base:
    def __init__(self, info: BaseInfo) -> None:
        self.info = info
        self.docs: dict[str, dict[str, Any]] = {}
        self.chunks: dict[int, StoredChunk] = {}
        self.vectors = ExactIndex(info.dims)
        self.by_source: dict[str, list[int]] = {}
        self.terms: dict[int, dict[str, int]] = {}


class InMemoryKnowledgeStore(KnowledgeStore):
    """Everything in dicts; vector search is an exact cosine scan, full text a BM25 over the
    chunks' words."""

    url = "memory://"

    def __init__(self) -> None:
        self._bases: dict[str, _Base] = {}
        self._next = 1
        self._lock = threading.Lock()  # writes have no await: safe across loops and threads

    async def ensure_base(
        self, name: str, *, dims: int, embedder: str, filters: Mapping[str, str]
    ) -> BaseInfo:
        b = self._bases.get(name)
        if b is None:
            b = self._bases[name] = _Base(
                BaseInfo(name, dims, embedder, dict(filters), created_at=time.time())
            )
        elif b.info.dims != dims:
            raise UserError(
                f"knowledge base {name!r} holds {b.info.dims}-dimension vectors; this embedder "
                f"makes {dims}",
                knowledge_base=name,
            )
        else:
            b.info.filters.update(filters)
        return self._info(b)

    def _info(self, b: _Base) -> BaseInfo:
        i = b.info
        return BaseInfo(
            i.name, i.dims, i.embedder, dict(i.filters), len(b.docs), len(b.chunks), i.created_at
        )

    async def get_base(self, name: str) -> BaseInfo | None:
        b = self._bases.get(name)
        return self._info(b) if b else None

    async def list_bases(self) -> list[BaseInfo]:
        return [self._info(b) for _, b in sorted(self._bases.items())]

    async def drop_base(self, name: str) -> bool:
        return self._bases.pop(name, None) is not None

    def _base(self, name: str) -> _Base:
        b = self._bases.get(name)
        if b is None:
            from ...errors import NotFound

            raise NotFound(f"no knowledge base {name!r}", knowledge_base=name)
        return b

    async def document_hashes(self, name: str, sources: Sequence[str]) -> dict[str, str]:
        b = self._bases.get(name)
        if b is None:
            return {}
        return {s: b.docs[s]["hash"] for s in sources if s in b.docs}

    def _remove(self, b: _Base, source: str) -> None:
        ids = b.by_source.pop(source, [])
        for cid in ids:
            b.chunks.pop(cid, None)
            b.terms.pop(cid, None)
        b.vectors.remove(ids)
        b.docs.pop(source, None)

    async def write_documents(self, name: str, docs: Sequence[DocumentWrite]) -> None:
        b = self._base(name)
        for d in docs:  # check everything first: nothing is half-written
            if len(d.vectors) != len(d.chunks):
                raise UserError(f"{d.source}: {len(d.chunks)} chunks but {len(d.vectors)} vectors")
            for v in d.vectors:
                if len(v) != 4 * b.info.dims:
                    raise UserError(
                        f"{d.source}: a vector has {len(v) // 4} dimensions, not {b.info.dims}"
                    )
        with self._lock:
            now = time.time()
            for d in docs:
                self._remove(b, d.source)
                ids = []
                for c in d.chunks:
                    cid = self._next
                    self._next += 1
                    ids.append(cid)
                    b.chunks[cid] = StoredChunk(cid, d.source, c.position, c.text, dict(c.metadata))
                    counts: dict[str, int] = {}
                    for w in query_terms(c.text, limit=1_000_000):
                        counts[w] = counts.get(w, 0) + 1
                    b.terms[cid] = counts
                b.by_source[d.source] = ids
                b.vectors.add_many(zip(ids, d.vectors, strict=True))
                b.docs[d.source] = {
                    "source": d.source,
                    "hash": d.hash,
                    "chunks": len(ids),
                    "metadata": dict(d.metadata),
                    "updated_at": now,
                }

    async def delete_documents(
        self, name: str, *, sources: Sequence[str] | None = None, conds: Sequence[Condition] = ()
    ) -> int:
        b = self._bases.get(name)
        if b is None:
            return 0
        picked = set(b.docs) if sources is None else {s for s in sources if s in b.docs}
        if conds:
            picked = {s for s in picked if matches(list(conds), s, b.docs[s]["metadata"])}
        with self._lock:
            for s in picked:
                self._remove(b, s)
        return len(picked)

    async def list_documents(
        self, name: str, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        b = self._bases.get(name)
        if b is None:
            return []
        return [dict(b.docs[s]) for s in sorted(b.docs)[offset : offset + limit]]

    async def vector_search(
        self, name: str, vector: bytes, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        b = self._base(name)
        candidates = None
        if conds:
            cl = list(conds)
            candidates = [
                cid for cid, ch in b.chunks.items() if matches(cl, ch.source, _dict(ch.metadata))
            ]
        found = b.vectors.search(vector, k, candidates=candidates)
        return [(b.chunks[cid], s) for cid, s in found]

    async def text_search(
        self, name: str, query: str, k: int, conds: Sequence[Condition] = ()
    ) -> list[tuple[StoredChunk, float]]:
        b = self._base(name)
        terms = query_terms(query)
        if not terms or not b.terms:
            return []
        n_docs = len(b.terms)
        avg = sum(sum(t.values()) for t in b.terms.values()) / n_docs
        df = {t: sum(1 for c in b.terms.values() if t in c) for t in terms}
        scored = []
        for cid, counts in b.terms.items():
            length = sum(counts.values())
            s = 0.0
            for t in terms:
                f = counts.get(t, 0)
                if not f:
                    continue
                idf = math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * length / avg))
            if s <= 0:
                continue
            ch = b.chunks[cid]
            if conds and not matches(list(conds), ch.source, _dict(ch.metadata)):
                continue
            scored.append((s, cid))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [(b.chunks[cid], s) for s, cid in scored[:k]]


def _dict(metadata: dict[str, Any] | str) -> dict[str, Any]:
    """This store keeps metadata as dicts (a search result may carry JSON text instead)."""
    assert not isinstance(metadata, str)
    return metadata
