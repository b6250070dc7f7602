"""The :class:`KnowledgeBase`: documents in, hybrid search out, and a search tool for agents.

::

    kb = KnowledgeBase("docs", store="sqlite:///.vivace/knowledge.db", filters={"year": int})
    kb.add("docs/", "https://example.com/guide.html")
    hits = kb.search("how do I install it?", filters={"year": {"gte": 2024}})
    agent = Agent("openai/gpt-4o", knowledge=kb)   # agentic RAG: a search tool
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..agent.capability import Capability
from ..errors import UserError, VivaceError
from ..storage._vec import pack
from .documents import Chunk, Document, SearchHit, content_hash
from .errors import ContentTooLarge, EmptyContent, IngestError, UnreadableContent
from .filters import compile_filters, normalize_declared
from .fusion import reciprocal_rank_fusion
from .ingest import IngestProgress, IngestReport, ItemResult, ProgressCallback
from .readers import DEFAULT_MAX_BYTES

if TYPE_CHECKING:
    from ..messages import Message
    from ..tools.context import RunContext
    from .context import KnowledgeContext
    from .stores.base import BaseInfo, KnowledgeStore, StoredChunk

__all__ = ["CITATIONS_KEY", "SEARCH_MODES", "KnowledgeBase"]

SEARCH_MODES = ("hybrid", "vector", "text")
BULK_ITEMS = 500
"""An ingest of this many items or more lets the store defer index work (``store.bulk``)."""
CITATIONS_KEY = "knowledge_citations"
"""``ctx.metadata`` key under which a run collects the chunks its knowledge searches
returned (moved to ``RunResult.citations`` when the run ends)."""

Item = Any  # a path, a directory, a glob, a URL, a Document


def _to_bytes(vec: Any) -> bytes:
    tb = getattr(vec, "tobytes", None)
    if tb is not None and getattr(vec, "dtype", None) is not None:
        import numpy as np

        return bytes(np.asarray(vec, dtype="<f4").tobytes())
    return pack(vec)


class KnowledgeBase(Capability):
    """A named, stored collection of documents with hybrid search; as a capability
    (``Agent(knowledge=kb)``) it gives the agent a search tool and says when to use it.

    Args:
        name: Its name within the store (any text; shared by every agent and worker that
            opens the same store).
        store: Where it lives: ``"sqlite:///path.db"`` (the default is
            ``.vivace/knowledge.db``), ``"postgresql://..."``, ``"memory"``, a
            :class:`~vivace.knowledge.stores.KnowledgeStore` or a vivace ``Storage``.
        embedder: ``"local"`` (the offline all-MiniLM-L6-v2), ``"provider/model"`` through
            the model router, or any object with ``async embed(texts)``.
        chunker: How documents are split (default: :class:`MarkdownChunker` for Markdown,
            HTML and DOCX, :class:`RecursiveChunker` otherwise, 1000 characters, 100 overlap).
        filters: The metadata fields searches may filter on, with their types
            (``{"year": int, "lang": str}``): typed in the search tool's schema.
        description: What it holds (shown to the model).
        mode: ``"hybrid"`` (vector and full-text fused by reciprocal rank), ``"vector"`` or
            ``"text"``.
        top_k: Hits per search. ``vector_weight``/``text_weight``/``rrf_k`` tune the fusion
            (defaults 1.0/0.5/10, tuned on held-out queries: docs/benchmarks.md);
            ``candidates`` is how many hits each method contributes (default ``4 * top_k``,
            at least 20).
        min_score: Drop hits scoring below it (cosine similarity in vector mode, BM25 in text
            mode, the fused score in hybrid mode, the reranker's score with a reranker).
        reranker: ``(query, hits) -> hits`` (sync or async): reorders (and rescores) the
            fused candidates, e.g. a cross-encoder or an LLM.
        max_bytes: Items larger than this are refused (:class:`ContentTooLarge`).
        tool_name: The search tool's name (give two knowledge bases of one agent different
            names).
    """

    __slots__ = (
        "_base",
        "_declared",
        "_embedder",
        "_store",
        "_tool",
        "candidates",
        "chunker",
        "description",
        "embedder_spec",
        "fetch_timeout",
        "filters",
        "max_bytes",
        "min_score",
        "mode",
        "name",
        "reranker",
        "rrf_k",
        "store_spec",
        "text_weight",
        "tool_name",
        "top_k",
        "vector_weight",
    )

    def __init__(
        self,
        name: str = "knowledge",
        *,
        store: Any = None,
        embedder: Any = "local",
        chunker: Any = None,
        filters: Mapping[str, Any] | None = None,
        description: str | None = None,
        mode: str = "hybrid",
        top_k: int = 5,
        vector_weight: float = 1.0,
        text_weight: float = 0.5,
        rrf_k: int = 10,
        candidates: int | None = None,
        min_score: float | None = None,
        reranker: Any = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetch_timeout: float = 30.0,
        tool_name: str = "search_knowledge",
    ) -> None:
        from ..identifiers import check_identifier

        check_identifier("knowledge_base", name)
        if mode not in SEARCH_MODES:
            raise UserError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
        self.name = name
        self.store_spec = store
        self.embedder_spec = embedder
        self.chunker = chunker
        self.filters = dict(filters or {})
        self._declared = normalize_declared(filters)
        self.description = description
        self.mode = mode
        self.top_k = top_k
        self.vector_weight = vector_weight
        self.text_weight = text_weight
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.min_score = min_score
        self.reranker = reranker
        self.max_bytes = max_bytes
        self.fetch_timeout = fetch_timeout
        self.tool_name = tool_name
        self._store: KnowledgeStore | None = None
        self._embedder: Any = None
        self._base: BaseInfo | None = None
        self._tool: Any = None

    # -- resolved lazily --------------------------------------------------------------------

    @property
    def store(self) -> KnowledgeStore:
        if self._store is None:
            from .stores import open_store

            self._store = open_store(self.store_spec)
        return self._store

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from .embedders import resolve

            self._embedder = resolve(self.embedder_spec)
        return self._embedder

    @property
    def declared_filters(self) -> dict[str, str]:
        """The declared filter fields and their JSON types."""
        return dict(self._declared)

    async def _embed(self, texts: Sequence[str]) -> list[bytes]:
        e = self.embedder
        array_fn = getattr(e, "embed_array", None)
        if array_fn is not None:
            arr = await asyncio.to_thread(array_fn, list(texts))
            return [_to_bytes(row) for row in arr]
        vectors = await e.embed(list(texts))
        if len(vectors) != len(texts):
            raise UserError(f"the embedder returned {len(vectors)} vectors for {len(texts)} texts")
        return [_to_bytes(v) for v in vectors]

    async def info(self) -> BaseInfo:
        """Create the knowledge base in its store if needed; its stored description."""
        if self._base is None:
            from .embedders import embedder_id

            e = self.embedder
            dims = getattr(e, "dimensions", None)
            if not dims:
                dims = len((await self._embed(["dimension probe"]))[0]) // 4
            self._base = await self.store.ensure_base(
                self.name, dims=int(dims), embedder=embedder_id(e), filters=self._declared
            )
        return self._base

    # -- ingestion ---------------------------------------------------------------------------

    async def aadd(
        self,
        *items: Item,
        metadata: Mapping[str, Any] | None = None,
        glob: str = "**/*",
        text_fields: Sequence[str] | None = None,
        id_field: str | None = None,
        chunker: Any = None,
        on_progress: ProgressCallback | None = None,
        batch_chunks: int = 256,
        concurrency: int = 4,
    ) -> IngestReport:
        """Add content: file paths, directories (walked with ``glob``), shell patterns,
        ``http(s)://`` URLs and :class:`Document`\\ s. ``metadata`` is added to every
        document's; ``text_fields``/``id_field`` pick the text and the id of CSV/JSON
        records. Unchanged documents are skipped, changed ones replaced. Returns an
        :class:`IngestReport`; failures are in it (each a typed error), never raised."""
        report = IngestReport()
        await self.info()
        jobs = self._jobs(items, glob)
        total = len(jobs)
        # files and URLs are read ``window`` at a time; Documents need no reading
        window = max(1, concurrency * 16)
        if all(isinstance(j[1], Document) for j in jobs):
            window = 2048
        sem = asyncio.Semaphore(max(1, concurrency))
        extra = dict(metadata or {})

        async def read(job: tuple[str, Any]) -> list[Document] | IngestError:
            async with sem:
                try:
                    return await self._read(job, extra, text_fields, id_field)
                except IngestError as exc:
                    return exc
                except VivaceError as exc:
                    return UnreadableContent(f"{job[0]}: {exc.message}", source=job[0])

        async with self.store.bulk(self.name) if total >= BULK_ITEMS else _no_bulk():
            await self._ingest_jobs(jobs, report, read, window, chunker, batch_chunks, on_progress)
        return report

    async def _ingest_jobs(
        self,
        jobs: list[tuple[str, Any]],
        report: IngestReport,
        read: Any,
        window: int,
        chunker: Any,
        batch_chunks: int,
        on_progress: ProgressCallback | None,
    ) -> None:
        total, done, written = len(jobs), 0, 0
        for w in range(0, total, window):
            part = jobs[w : w + window]
            results = await asyncio.gather(*(read(j) for j in part))
            docs: list[Document] = []
            for job, res in zip(part, results, strict=True):
                if isinstance(res, IngestError):
                    report.items.append(ItemResult(job[0], "failed", error=res))
                else:
                    docs.extend(res)
            written += await self._ingest_docs(
                docs, report, chunker, batch_chunks, on_progress, done, total, written
            )
            done += len(part)
            if on_progress is not None:
                await _call(on_progress, IngestProgress(done, total, written, part[-1][0]))

    def add(self, *items: Item, **options: Any) -> IngestReport:
        """Synchronous :meth:`aadd`."""
        from ..agent.agent import run_sync

        return run_sync(self.aadd(*items, **options))

    async def aadd_text(
        self,
        text: str,
        *,
        source: str,
        metadata: Mapping[str, Any] | None = None,
        markdown: bool = False,
    ) -> IngestReport:
        """Add one text (``source`` names it; adding the same source again replaces it)."""
        return await self.aadd(Document(source, text, dict(metadata or {}), markdown=markdown))

    def add_text(
        self,
        text: str,
        *,
        source: str,
        metadata: Mapping[str, Any] | None = None,
        markdown: bool = False,
    ) -> IngestReport:
        """Synchronous :meth:`aadd_text`."""
        return self.add(Document(source, text, dict(metadata or {}), markdown=markdown))

    async def aadd_records(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        source: str,
        text_fields: Sequence[str] | None = None,
        id_field: str | None = None,
    ) -> IngestReport:
        """Add records (dicts) as documents: ``text_fields`` (default: the string fields)
        are the text, every field is metadata, ``id_field`` names each (``source#id``)."""
        from .readers.records import records_to_documents

        try:
            docs = records_to_documents(
                list(records), source, text_fields=text_fields, id_field=id_field
            )
        except IngestError as exc:
            return IngestReport([ItemResult(source, "failed", error=exc)])
        return await self.aadd(*docs)

    def add_records(self, records: Iterable[Mapping[str, Any]], **options: Any) -> IngestReport:
        """Synchronous :meth:`aadd_records`."""
        from ..agent.agent import run_sync

        return run_sync(self.aadd_records(records, **options))

    def _jobs(self, items: Sequence[Item], glob: str) -> list[tuple[str, Any]]:
        from pathlib import Path

        from .readers import expand_paths

        jobs: list[tuple[str, Any]] = []
        for it in items:
            if isinstance(it, Document):
                jobs.append((it.source, it))
            elif isinstance(it, str) and it.startswith(("http://", "https://")):
                jobs.append((it, ("url", it)))
            elif isinstance(it, str | os.PathLike):
                found = expand_paths([it], glob)
                if not found:
                    jobs.append((os.fspath(it), ("missing", os.fspath(it))))
                for p in found:
                    jobs.append((Path(p).as_posix(), ("path", p)))
            else:
                raise UserError(
                    f"cannot add {type(it).__name__} {it!r}: give paths, URLs or Documents"
                )
        return jobs

    async def _read(
        self,
        job: tuple[str, Any],
        extra: dict[str, Any],
        text_fields: Sequence[str] | None,
        id_field: str | None,
    ) -> list[Document]:
        source, what = job
        if isinstance(what, Document):
            size = len(what.text.encode("utf-8", "surrogatepass"))
            if size > self.max_bytes:
                raise ContentTooLarge(
                    f"{source}: {size} bytes is more than the limit of {self.max_bytes} bytes",
                    source=source,
                )
            if not what.text.strip():
                raise EmptyContent(f"{source}: the text is empty", source=source)
            if extra:
                return [
                    Document(
                        what.source,
                        what.text,
                        {**extra, **what.metadata},
                        what.markdown,
                        what.page_starts,
                    )
                ]
            return [what]
        kind, target = what
        if kind == "missing":
            raise UnreadableContent(f"{source}: no such file or directory", source=source)
        if kind == "url":
            from .readers.url import fetch_url

            return await fetch_url(
                target, max_bytes=self.max_bytes, timeout=self.fetch_timeout, metadata=extra
            )
        from .readers import read_path

        return await asyncio.to_thread(
            read_path,
            target,
            max_bytes=self.max_bytes,
            metadata=extra,
            text_fields=text_fields,
            id_field=id_field,
        )

    async def _chunk(self, doc: Document, chunker: Any) -> list[Chunk]:
        c = chunker or self.chunker
        if c is None:
            from .chunkers import MarkdownChunker, RecursiveChunker

            c = MarkdownChunker() if doc.markdown else RecursiveChunker()
        chunks = c.chunk(doc)
        if inspect.isawaitable(chunks):
            chunks = await chunks
        chunks = list(chunks)
        if doc.page_starts:
            for ch in chunks:
                ch.metadata["page"] = bisect_right(doc.page_starts, ch.start)
        return chunks

    async def _ingest_docs(
        self,
        docs: list[Document],
        report: IngestReport,
        chunker: Any,
        batch_chunks: int,
        on_progress: ProgressCallback | None,
        done: int,
        total: int,
        written: int,
    ) -> int:
        from .stores.base import DocumentWrite

        if not docs:
            return 0
        # the last of two documents with one source wins (as if added one after the other)
        unique: dict[str, Document] = {}
        for d in docs:
            unique.pop(d.source, None)
            unique[d.source] = d
        hashes = {s: content_hash(d.text, d.metadata) for s, d in unique.items()}
        stored = await self.store.document_hashes(self.name, list(unique))
        pending: list[tuple[Document, list[Chunk]]] = []
        count = 0
        new = 0

        async def flush() -> None:
            nonlocal pending, count, new
            if not pending:
                return
            texts = [c.text for _, chunks in pending for c in chunks]
            try:
                vectors = await self._embed(texts)
                writes, i = [], 0
                for d, chunks in pending:
                    writes.append(
                        DocumentWrite(
                            d.source,
                            hashes[d.source],
                            d.metadata,
                            chunks,
                            vectors[i : i + len(chunks)],
                        )
                    )
                    i += len(chunks)
                await self.store.write_documents(self.name, writes)
            except (
                VivaceError
            ) as exc:  # the embedder or the store failed: this batch is not written
                for d, _ in pending:
                    report.items.append(ItemResult(d.source, "failed", error=exc))
                pending, count = [], 0
                return
            for d, chunks in pending:
                report.items.append(
                    ItemResult(d.source, "updated" if d.source in stored else "added", len(chunks))
                )
            new += len(texts)
            pending, count = [], 0
            if on_progress is not None:
                await _call(
                    on_progress, IngestProgress(done, total, written + new, writes[-1].source)
                )

        for source, d in unique.items():
            if stored.get(source) == hashes[source]:
                report.items.append(ItemResult(source, "unchanged"))
                continue
            try:
                chunks = await self._chunk(d, chunker)
                if not chunks:
                    raise EmptyContent(f"{source}: no text to index", source=source)
            except IngestError as exc:
                report.items.append(ItemResult(source, "failed", error=exc))
                continue
            pending.append((d, chunks))
            count += len(chunks)
            if count >= batch_chunks:
                await flush()
        await flush()
        return new

    # -- deletion ---------------------------------------------------------------------------

    async def adelete(self, *sources: str, filters: Mapping[str, Any] | None = None) -> int:
        """Delete documents by source and/or by a metadata filter on the documents'
        metadata; the number deleted. With neither, nothing is deleted."""
        if not sources and not filters:
            return 0
        conds = compile_filters(filters, self._declared, strict=False)
        return await self.store.delete_documents(
            self.name, sources=list(sources) if sources else None, conds=conds
        )

    def delete(self, *sources: str, filters: Mapping[str, Any] | None = None) -> int:
        """Synchronous :meth:`adelete`."""
        from ..agent.agent import run_sync

        return run_sync(self.adelete(*sources, filters=filters))

    async def adrop(self) -> bool:
        """Delete the whole knowledge base from its store."""
        self._base = None
        return await self.store.drop_base(self.name)

    async def adocuments(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """The stored documents (source, hash, chunks, metadata, updated_at), by source."""
        return await self.store.list_documents(self.name, limit=limit, offset=offset)

    # -- search ------------------------------------------------------------------------------------

    async def asearch(
        self,
        query: str,
        *,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        mode: str | None = None,
        min_score: float | None = None,
        rerank: bool = True,
        _strict: bool = False,
    ) -> list[SearchHit]:
        """The chunks most relevant to ``query``, best first (see the class for the modes,
        fusion, reranking and ``min_score``). ``filters`` restrict by metadata and source."""
        mode = mode or self.mode
        if mode not in SEARCH_MODES:
            raise UserError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
        k = max(1, int(top_k or self.top_k))
        conds = compile_filters(filters, self._declared, strict=_strict)
        if not query or not query.strip():
            return []
        store, name = self.store, self.name
        if self._base is None:
            base = await store.get_base(name)
            if base is None:
                return []  # nothing was ever added: searching creates nothing
            self._base = base
        reranker = self.reranker if rerank else None
        n = max(self.candidates or 4 * k, 20) if (mode == "hybrid" or reranker is not None) else k

        async def vec() -> list[tuple[StoredChunk, float]]:
            [q] = await self._embed([query])
            return await store.vector_search(name, q, n, conds)

        if mode == "vector":
            hits = [_hit(c, s, vrank=i) for i, (c, s) in enumerate(await vec(), 1)]
        elif mode == "text":
            hits = [
                _hit(c, s, trank=i)
                for i, (c, s) in enumerate(await store.text_search(name, query, n, conds), 1)
            ]
        else:
            v, t = await asyncio.gather(vec(), store.text_search(name, query, n, conds))
            chunks: dict[Any, StoredChunk] = {c.id: c for c, _ in t} | {c.id: c for c, _ in v}
            vranks: dict[Any, int] = {c.id: i for i, (c, _) in enumerate(v, 1)}
            tranks: dict[Any, int] = {c.id: i for i, (c, _) in enumerate(t, 1)}
            fused = reciprocal_rank_fusion(
                [
                    ([c.id for c, _ in v], self.vector_weight),
                    ([c.id for c, _ in t], self.text_weight),
                ],
                self.rrf_k,
            )
            if reranker is None:  # sorted best first: the k kept are these (min_score below)
                fused = fused[:k]
            # hits (their metadata decoded) only for the chunks that may be returned
            hits = [
                _hit(chunks[cid], score, vrank=vranks.get(cid), trank=tranks.get(cid))
                for cid, score in fused
            ]
        if reranker is not None and hits:
            out = reranker(query, hits)
            if inspect.isawaitable(out):
                out = await out
            hits = list(out)
        threshold = self.min_score if min_score is None else min_score
        if threshold is not None:
            hits = [h for h in hits if h.score >= threshold]
        return hits[:k]

    def search(self, query: str, **options: Any) -> list[SearchHit]:
        """Synchronous :meth:`asearch`."""
        from ..agent.agent import run_sync

        return run_sync(self.asearch(query, **options))

    # -- the capability (agentic RAG) --------------------------------------------------------------

    def tools(self) -> Sequence[Any]:
        """The search tool (built once; its schema types the declared filters)."""
        if self._tool is None:
            from .search_tool import make_search_tool

            self._tool = make_search_tool(self)
        return (self._tool,)

    def instructions(self, ctx: RunContext[Any], input: Message | None) -> str:
        what = f" ({self.description})" if self.description else ""
        return (
            f"You have a knowledge base {self.name!r}{what}. When a question may be answered "
            f"by it, call `{self.tool_name}` first (you may call it again with other words or "
            "filters), answer from the passages it returns, and cite their sources. If it has "
            "nothing relevant, say so rather than guess."
        )

    def after_run(self, ctx: RunContext[Any], result: Any) -> None:
        move_citations(ctx, result)

    def context(
        self,
        *,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        min_score: float | None = None,
    ) -> KnowledgeContext:
        """A capability for classic RAG: the top chunks for the user's message are put in the
        instructions of every run (no tool). ``Agent(knowledge=kb, knowledge_mode="context")``
        is the same."""
        from .context import KnowledgeContext

        return KnowledgeContext(self, top_k=top_k, filters=filters, min_score=min_score)

    def __repr__(self) -> str:
        return f"<KnowledgeBase {self.name!r}>"


def _hit(
    c: StoredChunk, score: float, *, vrank: int | None = None, trank: int | None = None
) -> SearchHit:
    meta = json.loads(c.metadata) if isinstance(c.metadata, str) else c.metadata
    return SearchHit(c.source, c.position, c.text, score, meta, c.id, vrank, trank)


def move_citations(ctx: Any, result: Any) -> None:
    """Put the run's collected citations on its result (``RunResult.citations``)."""
    cites = ctx.metadata.get(CITATIONS_KEY)
    if cites:
        result.citations = cites


def record_citations(ctx: Any, hits: Sequence[SearchHit], kb: str) -> list[dict[str, Any]]:
    out = [{"knowledge_base": kb, **h.citation()} for h in hits]
    if ctx is not None:
        ctx.metadata.setdefault(CITATIONS_KEY, []).extend(out)
    return out


@contextlib.asynccontextmanager
async def _no_bulk() -> AsyncIterator[None]:
    yield


async def _call(fn: Any, *args: Any) -> None:
    r = fn(*args)
    if inspect.isawaitable(r):
        await r
