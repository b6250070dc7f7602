"""Ingestion: content hashes make re-adding idempotent, changes replace old chunks, deletes
by source and by metadata, progress reports, and a failing batch writes nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from vivace.errors import ModelHTTPError
from vivace.knowledge import Document, IngestProgress, KnowledgeBase, RecursiveChunker

from .conftest import corpus_documents


async def test_readding_unchanged_content_writes_nothing(kstore, embedder) -> None:
    kb = KnowledgeBase("idem", store=kstore, embedder=embedder, filters={"year": int})
    first = await kb.aadd(*corpus_documents())
    assert first.added == 5 and first.chunks >= 5
    before = await kb.adocuments()
    calls = embedder.calls
    again = await kb.aadd(*corpus_documents())
    assert again.unchanged == 5 and again.added == again.updated == again.chunks == 0
    assert embedder.calls == calls  # nothing was even embedded
    assert await kb.adocuments() == before  # same hashes, same timestamps


async def test_changed_document_replaces_its_old_chunks(kstore, embedder) -> None:
    kb = KnowledgeBase("upd", store=kstore, embedder=embedder, chunker=RecursiveChunker(60, 0))
    await kb.aadd(
        Document("doc", "Zebras have black and white stripes. " * 4),
        Document("other", "Owls hunt at night."),
    )
    old = await kb.adocuments()
    assert old[0]["chunks"] > 1
    r = await kb.aadd(Document("doc", "Giraffes have very long necks."))
    assert r.updated == 1 and r.added == 0
    docs = {d["source"]: d for d in await kb.adocuments()}
    assert docs["doc"]["chunks"] == 1 and docs["doc"]["hash"] != old[0]["hash"]
    hits = await kb.asearch("zebra stripes", mode="text", top_k=10)
    assert all("Zebras" not in h.text for h in hits)
    [hit] = await kb.asearch("animal with a long neck", top_k=1)
    assert hit.source == "doc" and hit.position == 0
    # a metadata change alone is a change too
    r = await kb.aadd(Document("doc", "Giraffes have very long necks.", {"rev": 2}))
    assert r.updated == 1


async def test_delete_by_source_and_by_metadata_filter(kstore, embedder) -> None:
    kb = KnowledgeBase("del", store=kstore, embedder=embedder, filters={"year": int, "team": str})
    await kb.aadd(*corpus_documents())
    assert await kb.adelete("cats.txt", "no-such-source") == 1
    assert await kb.adelete(filters={"team": "geo", "year": {"gte": 2021}}) == 1  # paris only
    assert await kb.adelete() == 0  # neither: nothing
    left = [d["source"] for d in await kb.adocuments()]
    assert left == ["errors.txt", "install.md", "ocean.txt"]
    hits = await kb.asearch("capital of France", top_k=10)
    assert all(h.source in left for h in hits)
    assert await kb.adelete(filters={"public": False}) == 1  # undeclared fields work in the API
    assert [d["source"] for d in await kb.adocuments()] == ["install.md", "ocean.txt"]


async def test_progress_is_reported_per_batch(embedder) -> None:
    kb = KnowledgeBase("prog", store="memory", embedder=embedder)
    seen: list[IngestProgress] = []
    docs = [Document(f"d{i}", f"Document number {i} about subject {i}.") for i in range(30)]
    r = await kb.aadd(*docs, on_progress=seen.append, batch_chunks=8, concurrency=2)
    assert r.added == 30
    assert len(seen) >= 4
    assert [p.chunks for p in seen] == sorted(p.chunks for p in seen)
    assert seen[-1].done == seen[-1].total == 30 and seen[-1].chunks == 30


class _FailingEmbedder:
    """Real vectors, except for texts with "FAIL" in them: the provider answers 500."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dimensions = 384
        self.id = inner.id

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if any("FAIL" in t for t in texts):
            raise ModelHTTPError("embeddings failed", provider="test", status=500)
        return await self.inner.embed(texts)


async def test_a_failing_batch_writes_nothing_and_the_rest_goes_on(kstore, embedder) -> None:
    kb = KnowledgeBase("atomic", store=kstore, embedder=_FailingEmbedder(embedder))
    docs = [
        Document("a", "Alpha document about apples."),
        Document("b", "Beta document about bananas."),
        Document("bad", "This one will FAIL to embed."),
        Document("c", "Gamma document about cherries."),
    ]
    r = await kb.aadd(*docs, batch_chunks=2)  # batches: [a, b], [bad, c]
    status = {i.source: i.status for i in r.items}
    assert status == {"a": "added", "b": "added", "bad": "failed", "c": "failed"}
    assert isinstance(r.failed[0].error, ModelHTTPError)
    assert [d["source"] for d in await kb.adocuments()] == ["a", "b"]
    r = await kb.aadd(Document("c", "Gamma document about cherries."))
    assert r.added == 1  # it was not half-written before


async def test_two_knowledge_bases_in_one_store_are_separate(kstore, embedder) -> None:
    a = KnowledgeBase("a", store=kstore, embedder=embedder)
    b = KnowledgeBase("b", store=kstore, embedder=embedder)
    await a.aadd(Document("x", "Tulips bloom in spring."))
    await b.aadd(Document("x", "Snow falls in winter."))
    [ha] = await a.asearch("flowers", top_k=5)
    [hb] = await b.asearch("flowers", top_k=5)
    assert ha.text.startswith("Tulips") and hb.text.startswith("Snow")
    names = [i.name for i in await kstore.list_bases()]
    assert names == ["a", "b"]
    assert await a.adrop() is True
    assert [i.name for i in await kstore.list_bases()] == ["b"]


async def test_a_different_embedding_size_is_refused(kstore, embedder) -> None:
    from vivace.errors import UserError
    from vivace.memory import HashEmbedder

    await KnowledgeBase("dims", store=kstore, embedder=embedder).aadd(Document("x", "text"))
    other = HashEmbedder(dims=64)
    with pytest.raises(UserError, match="384-dimension"):
        await KnowledgeBase("dims", store=kstore, embedder=other).aadd(Document("y", "more"))


async def test_bulk_ingest_into_an_empty_postgres_base_builds_the_index_at_the_end(
    postgres_url, embedder, monkeypatch
) -> None:
    import uuid

    import asyncpg

    from vivace.knowledge import knowledge_base
    from vivace.knowledge.stores import PostgresKnowledgeStore

    monkeypatch.setattr(knowledge_base, "BULK_ITEMS", 3)
    store = PostgresKnowledgeStore(postgres_url, schema=f"k_{uuid.uuid4().hex[:12]}")
    kb = KnowledgeBase("bulk", store=store, embedder=embedder)
    seen: list[bool] = []

    async def index_exists() -> bool:
        conn = await asyncpg.connect(store._dsn)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = $1 "
                    "AND indexname LIKE 'kb_chunks_hnsw_%')",
                    store.schema,
                )
            )
        finally:
            await conn.close()

    async def progress(p: IngestProgress) -> None:
        seen.append(await index_exists())

    try:
        r = await kb.aadd(*corpus_documents(), on_progress=progress)
        assert r.added == 5
        assert seen and not any(seen)  # no index while loading
        assert await index_exists()  # built once at the end
        [hit] = await kb.asearch("purring pet", top_k=1, mode="vector")
        assert hit.source == "cats.txt"
        # a later small ingest into the non-empty base keeps the index
        await kb.aadd(Document("more", "Hamsters store food in their cheeks."))
        assert await index_exists()
    finally:
        await store.close()
        conn = await asyncpg.connect(store._dsn)
        await conn.execute(f'DROP SCHEMA "{store.schema}" CASCADE')
        await conn.close()


async def test_router_embedder_batches_and_retries(kstore) -> None:
    """A "provider/model" embedder goes through the model router: batched requests, and a
    transient provider error is retried (here against the fake OpenAI server)."""
    from vivace.models.embeddings import resolve_embedder
    from vivace.testing.fake_providers import FakeOpenAIChat, HTTPFault

    with FakeOpenAIChat() as srv:
        emb = resolve_embedder(
            "openai/text-embedding-3-small", base_url=srv.base_url, api_key="sk-test", batch_size=4
        )
        srv.script(HTTPFault(503, "overloaded"))
        kb = KnowledgeBase("routed", store=kstore, embedder=emb)
        docs = [Document(f"d{i}", f"Document {i} text.") for i in range(10)]
        r = await kb.aadd(*docs)
        bodies = [q.json for q in srv.requests if q.path == "/v1/embeddings"]
    assert r.added == 10 and not r.failed
    assert all(b["model"] == "text-embedding-3-small" for b in bodies)
    # the size probe (answered 503, then retried), then 10 texts in batches of 4, 4 and 2
    assert [len(b["input"]) for b in bodies][:2] == [1, 1]
    assert sorted(len(b["input"]) for b in bodies[2:]) == [2, 4, 4]
    info = await kstore.get_base("routed")
    assert info.embedder == "openai/text-embedding-3-small" and info.chunks == 10
