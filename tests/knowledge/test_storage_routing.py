"""Knowledge bases on a vivace Storage: the same database (PostgreSQL), a file beside the
storage's own (SQLite), one store per in-memory storage, and a CompositeStorage routing
knowledge to another backend than sessions."""

from __future__ import annotations

from pathlib import Path

from vivace import Agent
from vivace.knowledge import KnowledgeBase
from vivace.knowledge.stores import (
    InMemoryKnowledgeStore,
    PostgresKnowledgeStore,
    SQLiteKnowledgeStore,
    open_store,
)
from vivace.testing import ScriptedModel, call

from .conftest import corpus_documents


async def test_a_knowledge_base_on_the_agents_storage(storage, embedder) -> None:
    kb = KnowledgeBase("on-storage", store=storage, embedder=embedder)
    assert open_store(storage) is kb.store  # one knowledge store per storage
    await kb.aadd(*corpus_documents())
    model = ScriptedModel(
        [call("search_knowledge", {"query": "French capital", "top_k": 1}), "Paris."]
    )
    agent = Agent(model, storage=storage, knowledge=kb)
    result = await agent.arun("What is the capital of France?", session_id="s-k")
    assert [c["source"] for c in result.citations] == ["paris.txt"]
    stored = await storage.sessions.get_run(result.run_id)
    tool_results = [p for m in stored.messages for p in m.parts if p.kind == "tool_result"]
    assert tool_results[0].content["passages"][0]["source"] == "paris.txt"  # persisted too
    await kb.store.close()


async def test_sqlite_storage_keeps_its_file_to_itself(tmp_path: Path, embedder) -> None:
    from vivace.storage import SQLiteStorage

    st = SQLiteStorage(tmp_path / "vivace.db")
    store = open_store(st)
    assert (
        isinstance(store, SQLiteKnowledgeStore) and store.path == f"{tmp_path}/vivace-knowledge.db"
    )
    kb = KnowledgeBase("side", store=st, embedder=embedder)
    await kb.aadd(*corpus_documents())
    await store.close()
    # the storage's own file is untouched: a fresh storage opens it (no foreign tables)
    fresh = SQLiteStorage(tmp_path / "vivace.db")
    await fresh.setup()
    await fresh.close()


async def test_composite_storage_routes_knowledge_elsewhere(
    tmp_path: Path, postgres_url: str, embedder
) -> None:
    import uuid

    from vivace.storage import CompositeStorage, InMemoryStorage, SQLiteStorage

    schema = f"k_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}schema={schema}"
    composite = CompositeStorage(SQLiteStorage(tmp_path / "sessions.db"), knowledge=url)
    store = open_store(composite)
    assert isinstance(store, PostgresKnowledgeStore) and store.schema == schema
    unrouted = CompositeStorage(InMemoryStorage())
    assert isinstance(open_store(unrouted), InMemoryKnowledgeStore)
    kb = KnowledgeBase("routed-kb", store=composite, embedder=embedder)
    try:
        await kb.aadd(*corpus_documents())
        agent = Agent(
            ScriptedModel([call("search_knowledge", {"query": "deep ocean", "top_k": 1}), "ok"]),
            storage=composite,
            knowledge=kb,
        )
        r = await agent.arun("Which ocean is deepest?", session_id="s-1")
        assert [c["source"] for c in r.citations] == ["ocean.txt"]
        assert (await composite.sessions.get_run(r.run_id)) is not None  # sessions in SQLite
    finally:
        await kb.adrop()
        await store.close()
        await composite.close()
        import asyncpg

        conn = await asyncpg.connect(store._dsn)
        try:
            tables = await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_name LIKE 'kb\\_%'"
            )
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
        assert tables == 0  # nothing was made in the default schema
