"""Search: vector, full text and hybrid on every store, metadata filters pushed down, the
reranking hook and the minimum score."""

from __future__ import annotations

import pytest

from vivace.knowledge import Document, InvalidFilter, KnowledgeBase, SearchHit

from .conftest import corpus_documents


@pytest.fixture
async def kb(kstore, embedder) -> KnowledgeBase:
    kb = KnowledgeBase(
        "search", store=kstore, embedder=embedder,
        filters={"year": int, "team": str, "public": bool, "score": float},
    )  # fmt: skip
    await kb.aadd(*corpus_documents())
    return kb


async def test_vector_search_finds_paraphrases(kb: KnowledgeBase) -> None:
    [hit] = await kb.asearch("which feline animal makes a purring sound", mode="vector", top_k=1)
    assert hit.source == "cats.txt" and 0.3 < hit.score <= 1.0 and hit.vector_rank == 1


async def test_text_search_finds_rare_terms(kb: KnowledgeBase) -> None:
    hits = await kb.asearch("E4417", mode="text", top_k=3)
    assert [h.source for h in hits] == ["errors.txt"] and hits[0].text_rank == 1


async def test_hybrid_finds_what_either_method_finds(kb: KnowledgeBase) -> None:
    hits = await kb.asearch("E4417 meaning", top_k=2)
    assert hits[0].source == "errors.txt"
    hits = await kb.asearch("biggest sea on the planet", top_k=2)
    assert hits[0].source == "ocean.txt"
    assert hits == sorted(hits, key=lambda h: -h.score)


async def test_hybrid_hits_are_the_fusion_of_both_searches_with_their_metadata(
    kb: KnowledgeBase,
) -> None:
    from vivace.knowledge.fusion import reciprocal_rank_fusion

    q = "largest city with a famous tower"
    n = max(kb.candidates or 4 * 3, 20)
    vec = await kb.asearch(q, mode="vector", top_k=n)
    txt = await kb.asearch(q, mode="text", top_k=n)
    vids, tids = [h.chunk_id for h in vec], [h.chunk_id for h in txt]
    fused = reciprocal_rank_fusion([(vids, kb.vector_weight), (tids, kb.text_weight)], kb.rrf_k)
    hits = await kb.asearch(q, mode="hybrid", top_k=3)
    assert [h.chunk_id for h in hits] == [cid for cid, _ in fused[:3]]
    by_id = {h.chunk_id: h for h in vec + txt}
    for h, (_, score) in zip(hits, fused, strict=False):
        assert h.score == pytest.approx(score)
        assert h.metadata == by_id[h.chunk_id].metadata and h.metadata  # decoded, not text
        vr = vids.index(h.chunk_id) + 1 if h.chunk_id in vids else None
        tr = tids.index(h.chunk_id) + 1 if h.chunk_id in tids else None
        assert (h.vector_rank, h.text_rank) == (vr, tr)


def test_reciprocal_rank_fusion() -> None:
    from vivace.knowledge.fusion import reciprocal_rank_fusion

    fused = reciprocal_rank_fusion([(["a", "b", "c"], 1.0), (["c", "b", "d"], 1.0)], k=60)
    assert [key for key, _ in fused] == ["c", "b", "a", "d"]  # 1/63 + 1/61 > 2/62
    assert dict(fused)["b"] == pytest.approx(2 / 62) and dict(fused)["a"] == pytest.approx(1 / 61)
    weighted = reciprocal_rank_fusion([(["a", "b"], 2.0), (["b", "a"], 1.0)], k=1)
    assert [key for key, _ in weighted] == ["a", "b"]
    assert reciprocal_rank_fusion([(["a"], 0.0), (["b"], 1.0)]) == [("b", 1 / 61)]


async def test_fusion_weights_move_the_ranking(kb: KnowledgeBase) -> None:
    q = "largest city with a famous tower"  # text favours "largest" (ocean), vector Paris
    kb.text_weight, kb.vector_weight = 1.0, 0.0
    text_first = (await kb.asearch(q, top_k=1))[0].source
    kb.text_weight, kb.vector_weight = 0.0, 1.0
    vector_first = (await kb.asearch(q, top_k=1))[0].source
    assert vector_first == "paris.txt"
    assert text_first == (await kb.asearch(q, mode="text", top_k=1))[0].source


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
async def test_filters_are_applied_in_the_store(kb: KnowledgeBase, mode: str) -> None:
    q = "largest ocean city cats license install"

    async def sources(filters):
        return sorted({h.source for h in await kb.asearch(q, mode=mode, top_k=10, filters=filters)})

    assert await sources({"team": "geo"}) == ["ocean.txt", "paris.txt"]
    assert await sources({"year": {"gte": 2021}}) == ["errors.txt", "install.md", "paris.txt"]
    assert await sources({"year": {"gt": 2019, "lte": 2021}}) == ["ocean.txt", "paris.txt"]
    assert await sources({"team": {"in": ["pets", "support"]}}) == ["cats.txt", "errors.txt"]
    assert await sources({"public": False}) == ["errors.txt", "paris.txt"]
    assert await sources({"score": {"gte": 4}}) == ["ocean.txt"]
    assert await sources({"source": {"in": ["cats.txt", "paris.txt"]}, "public": True}) == [
        "cats.txt"
    ]
    assert await sources({"team": "nobody"}) == []
    assert await sources({"year": [2019, 2020]}) == ["cats.txt", "ocean.txt"]


async def test_a_selective_filter_still_fills_top_k(kstore, embedder) -> None:
    kb = KnowledgeBase("many", store=kstore, embedder=embedder, filters={"n": int})
    docs = [Document(f"d{i}", f"Note {i}: the weather is mild today.", {"n": i}) for i in range(40)]
    await kb.aadd(*docs)
    hits = await kb.asearch("weather", mode="vector", top_k=3, filters={"n": {"gte": 37}})
    assert sorted(h.source for h in hits) == ["d37", "d38", "d39"]


async def test_bad_filters_are_typed_errors(kb: KnowledgeBase) -> None:
    with pytest.raises(InvalidFilter, match="integer"):
        await kb.asearch("x", filters={"year": "2020"})
    with pytest.raises(InvalidFilter, match="operator"):
        await kb.asearch("x", filters={"year": {"between": [1, 2]}})
    with pytest.raises(InvalidFilter, match="ranges need numbers"):
        await kb.asearch("x", filters={"team": {"gt": "a"}})
    with pytest.raises(InvalidFilter, match="non-empty list"):
        await kb.asearch("x", filters={"team": {"in": []}})


async def test_reranker_hook_sync_and_async(kb: KnowledgeBase) -> None:
    seen: list[int] = []

    def by_length(query: str, hits: list[SearchHit]) -> list[SearchHit]:
        seen.append(len(hits))
        for h in hits:
            h.score = -len(h.text)
        return sorted(hits, key=lambda h: -h.score)

    kb.reranker = by_length
    hits = await kb.asearch("anything at all", top_k=2)
    assert seen and seen[0] >= 5  # it saw the fused candidates, not only top_k
    assert [len(h.text) for h in hits] == sorted(len(h.text) for h in hits)[:2]

    async def reverse(query: str, hits: list[SearchHit]) -> list[SearchHit]:
        return list(reversed(hits))

    kb.reranker = reverse
    normal = await kb.asearch("cats purring", top_k=5, rerank=False)
    reranked = await kb.asearch("cats purring", top_k=5)
    assert reranked[0].source != "cats.txt" and normal[0].source == "cats.txt"


async def test_min_score_drops_weak_hits(kb: KnowledgeBase) -> None:
    all_hits = await kb.asearch("cats purring", mode="vector", top_k=5)
    assert len(all_hits) == 5
    strong = await kb.asearch("cats purring", mode="vector", top_k=5, min_score=0.4)
    assert [h.source for h in strong] == ["cats.txt"]
    assert all(h.score >= 0.4 for h in strong)


async def test_empty_query_and_empty_base(kstore, embedder) -> None:
    kb = KnowledgeBase("empty", store=kstore, embedder=embedder)
    assert await kb.asearch("   ") == []
    assert await kb.asearch("anything") == []


async def test_two_store_objects_share_a_sqlite_file(tmp_path, embedder) -> None:
    from vivace.knowledge.stores import SQLiteKnowledgeStore

    path = tmp_path / "shared.db"
    writer = KnowledgeBase("shared", store=SQLiteKnowledgeStore(path), embedder=embedder)
    reader = KnowledgeBase("shared", store=SQLiteKnowledgeStore(path), embedder=embedder)
    await writer.aadd(Document("w", "Volcanic eruptions eject ash."))
    [hit] = await reader.asearch("volcano ash", top_k=1)
    assert hit.source == "w"
    await writer.store.close()
    await reader.store.close()


async def test_postgres_sessions_search_hnsw_iteratively(postgres_url) -> None:
    """Filtered HNSW searches need pgvector's iterative scans to fill k: every pooled
    session has them on, with the store's ef_search."""
    import uuid

    from vivace.knowledge.stores import PostgresKnowledgeStore

    store = PostgresKnowledgeStore(postgres_url, schema=f"k_{uuid.uuid4().hex[:12]}", ef_search=80)
    try:
        pool = await store._get_pool()
        async with pool.acquire() as conn:
            await conn.execute("LOAD 'vector'")
            assert await conn.fetchval("SHOW hnsw.iterative_scan") == "relaxed_order"
            assert await conn.fetchval("SHOW hnsw.ef_search") == "80"
            await conn.execute(f'DROP SCHEMA "{store.schema}" CASCADE')
    finally:
        await store.close()


async def test_sqlite_vector_cache_matches_sqlite_vec_and_follows_changes(
    tmp_path, embedder, monkeypatch
) -> None:
    """Large SQLite knowledge bases are searched from an in-process copy of their vectors: the
    same hits as sqlite-vec's scan, and a change made through another store object (another
    worker) is seen by the next search."""
    from vivace.knowledge.stores import SQLiteKnowledgeStore

    monkeypatch.setattr(SQLiteKnowledgeStore, "CACHE_MIN_CHUNKS", 1)
    path = tmp_path / "cache.db"
    cached_store = SQLiteKnowledgeStore(path)
    plain_store = SQLiteKnowledgeStore(path, cache_vectors=False)
    filters = {"year": int, "team": str}
    cached = KnowledgeBase("c", store=cached_store, embedder=embedder, filters=filters)
    plain = KnowledgeBase("c", store=plain_store, embedder=embedder, filters=filters)
    await plain.aadd(*corpus_documents())
    try:
        for q, flt in (
            ("largest ocean", None),
            ("pets that purr", None),
            ("anything", {"team": "geo"}),
            ("license", {"year": {"gte": 2021}}),
        ):
            a = await cached.asearch(q, mode="vector", top_k=3, filters=flt)
            b = await plain.asearch(q, mode="vector", top_k=3, filters=flt)
            assert [h.source for h in a] == [h.source for h in b]
            assert [round(h.score, 4) for h in a] == [round(h.score, 4) for h in b]
        assert cached_store._vcache  # the copy was used
        await plain.aadd(Document("tea.txt", "Green tea is steeped at eighty degrees."))
        [hit] = await cached.asearch("brewing green tea", mode="vector", top_k=1)
        assert hit.source == "tea.txt"
        await plain.adelete("tea.txt")
        [hit] = await cached.asearch("brewing green tea", mode="vector", top_k=1)
        assert hit.source != "tea.txt"
    finally:
        await cached_store.close()
        await plain_store.close()


async def test_vectors_beyond_hnsw_dimensions_are_searched_exactly(kstore) -> None:
    """3,072-dimension embeddings (e.g. text-embedding-3-large) exceed pgvector's HNSW limit:
    the knowledge base is created without an index and searched exactly; elsewhere as usual."""
    import random

    from vivace.knowledge.documents import Chunk
    from vivace.knowledge.stores import DocumentWrite
    from vivace.storage.vectors import pack

    rng = random.Random(3)
    vecs = [[rng.gauss(0, 1) for _ in range(3072)] for _ in range(4)]
    await kstore.ensure_base("big", dims=3072, embedder="test", filters={})
    await kstore.write_documents(
        "big",
        [
            DocumentWrite(f"d{i}", f"h{i}", {}, [Chunk(f"d{i}", 0, f"text {i}")], [pack(v)])
            for i, v in enumerate(vecs)
        ],
    )
    [(chunk, score)] = await kstore.vector_search("big", pack(vecs[2]), 1)
    assert chunk.source == "d2" and score == pytest.approx(1.0, abs=1e-5)
