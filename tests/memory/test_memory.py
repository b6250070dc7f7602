"""Memory on every backend: working memory, user-memory tools, semantic recall, other domains."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from vivace.errors import NotFound, UserError
from vivace.memory import HashEmbedder, Memory, SemanticRecall, WorkingMemory
from vivace.messages import Message
from vivace.storage import (
    MessageEmbedding,
    RunRecord,
    ScoreRecord,
    SpanRecord,
    UserMemory,
)
from vivace.tools import ModelRetry, RunContext, as_tool


def ctx(session_id: str | None = "s1", user_id: str | None = "alice") -> RunContext[Any]:
    return RunContext("run-x", session_id=session_id, user_id=user_id, agent_name="helper")


async def call(fn: Any, args: dict[str, Any], context: RunContext[Any]) -> Any:
    """Call a built-in tool the way the agent does: validate the model's arguments, then run."""
    t = as_tool(fn)
    return await t.call(t.validate(args), context)


def by_name(memory: Memory) -> dict[str, Any]:
    return {f.__name__: f for f in memory.tools()}


async def test_markdown_working_memory_per_session(storage: Any) -> None:
    memory = Memory(storage, working=WorkingMemory(template="# Notes\n- name:\n"))
    tools = by_name(memory)
    assert list(tools) == ["update_working_memory"]
    first = await memory.notes(session_id="s1", user_id="alice")
    assert first is not None and "# Notes\n- name:" in first

    assert (
        await call(tools["update_working_memory"], {"content": "# Notes\n- name: Alice"}, ctx())
        == "Working memory updated."
    )
    assert "- name: Alice" in (await memory.notes(session_id="s1", user_id="alice") or "")
    # another session starts from the template
    assert "- name: Alice" not in (await memory.notes(session_id="s2", user_id="alice") or "")
    assert await storage.memory.get_working_memory("session", "s1") == "# Notes\n- name: Alice"


class Profile(pydantic.BaseModel):
    name: str | None = None
    city: str | None = None
    likes: list[str] = []


async def test_schema_working_memory_per_user_merges_fields(storage: Any) -> None:
    wm = WorkingMemory(schema=Profile, scope="user")
    memory = Memory(storage, working=wm)
    tool = as_tool(memory.tools()[0])
    assert tool.name == "update_working_memory"
    assert "city" in str(tool.definition().parameters)

    await tool.call(tool.validate({"memory": {"name": "Alice"}}), ctx("s1"))
    await tool.call(
        tool.validate({"memory": {"city": "Lyon"}}), ctx("s2")
    )  # another session, same user
    stored = await wm.load(storage, session_id="s9", user_id="alice")
    assert Profile.model_validate_json(stored) == Profile(name="Alice", city="Lyon")
    # invalid data never reaches storage
    with pytest.raises(ValueError):
        await wm.update(storage, {"likes": "not a list"}, session_id="s1", user_id="alice")
    assert (
        Profile.model_validate_json(await wm.load(storage, session_id="s1", user_id="alice")).likes
        == []
    )
    other = await wm.load(storage, session_id="s1", user_id="bob")
    assert Profile.model_validate_json(other) == Profile()
    with pytest.raises(UserError):
        await wm.load(storage, session_id="s1", user_id=None)


async def test_user_memory_tools(storage: Any) -> None:
    memory = Memory(storage, user_memories=True)
    tools = by_name(memory)
    assert set(tools) == {"add_memory", "search_memories", "update_memory", "delete_memory"}
    out = await call(
        tools["add_memory"], {"content": "Alice is vegetarian", "topics": ["food"]}, ctx()
    )
    mem_id = out.split()[-1].rstrip(".")
    await call(tools["add_memory"], {"content": "Alice works as a nurse in Lyon"}, ctx())
    await call(tools["add_memory"], {"content": "Bob likes steak"}, ctx(user_id="bob"))

    found = await call(
        tools["search_memories"], {"query": "what food does she eat? vegetarian"}, ctx()
    )
    assert [f["content"] for f in found] == ["Alice is vegetarian"]
    assert found[0]["topics"] == ["food"]
    assert [
        f["content"] for f in await call(tools["search_memories"], {"query": "steak"}, ctx())
    ] == []

    await call(tools["update_memory"], {"memory_id": mem_id, "content": "Alice is vegan"}, ctx())
    got = await storage.memory.get_user_memory(mem_id, user_id="alice")
    assert got.content == "Alice is vegan" and got.agent_id == "helper"
    # bob cannot see, change or delete alice's memory
    assert await storage.memory.get_user_memory(mem_id, user_id="bob") is None
    with pytest.raises(ModelRetry):
        await call(
            tools["update_memory"], {"memory_id": mem_id, "content": "x"}, ctx(user_id="bob")
        )
    with pytest.raises(ModelRetry):
        await call(tools["delete_memory"], {"memory_id": mem_id}, ctx(user_id="bob"))
    assert (
        await storage.memory.get_user_memory(mem_id, user_id="alice")
    ).content == "Alice is vegan"

    text = await memory.notes(session_id="s1", user_id="alice")
    assert text is not None and "Alice is vegan" in text and "steak" not in text
    await call(tools["delete_memory"], {"memory_id": mem_id}, ctx())
    assert [m.content for m in await storage.memory.list_user_memories("alice")] == [
        "Alice works as a nurse in Lyon"
    ]
    with pytest.raises(UserError):
        await call(tools["add_memory"], {"content": "x"}, ctx(user_id=None))
    with pytest.raises(NotFound):
        await storage.memory.update_user_memory("missing", user_id="alice", content="x")


async def test_user_memory_semantic_search_with_an_embedder(storage: Any) -> None:
    memory = Memory(storage, user_memories=True, embedder=HashEmbedder())
    tools = by_name(memory)
    for fact in (
        "favourite colour is green",
        "has two cats named Tom and Jerry",
        "lives near the sea",
    ):
        await call(tools["add_memory"], {"content": fact}, ctx())
    found = await call(tools["search_memories"], {"query": "cats named", "limit": 1}, ctx())
    assert [f["content"] for f in found] == ["has two cats named Tom and Jerry"]


async def finished_run(
    st: Any, session_id: str, run_id: str, texts: list[tuple[str, str]], user_id: str = "alice"
) -> RunRecord:
    rec = RunRecord(run_id, session_id, user_id=user_id, status="completed")
    rec.messages = [
        Message.user(t) if role == "user" else Message.assistant(t) for role, t in texts
    ]
    await st.sessions.finish_run(rec)
    return rec


async def test_semantic_recall_topk_neighbours_threshold_and_scope(storage: Any) -> None:
    recall = SemanticRecall(HashEmbedder(), top_k=1, message_range=1, threshold=0.3)
    memory = Memory(storage, recall=recall)
    r1 = await finished_run(
        storage, "s1", "r1", [("user", "my dog is called Rex"), ("assistant", "Rex is a nice name")]
    )
    r2 = await finished_run(
        storage,
        "s1",
        "r2",
        [("user", "what is the weather in Paris"), ("assistant", "sunny and warm")],
    )
    r3 = await finished_run(
        storage, "s1", "r3", [("user", "thanks"), ("assistant", "you are welcome")]
    )
    other = await finished_run(
        storage, "s2", "r4", [("user", "the weather in Paris again"), ("assistant", "rainy")]
    )
    bobs = await finished_run(
        storage,
        "s3",
        "r5",
        [("user", "weather in Paris for bob"), ("assistant", "cold")],
        user_id="bob",
    )
    for rec in (r1, r2, r3, other, bobs):
        await memory.index_run(rec)

    got = await memory.recall_messages("weather in Paris", session_id="s1", user_id="alice")
    # the hit plus one neighbour on each side, in conversation order
    assert [m.text for m in got] == [
        "Rex is a nice name",
        "what is the weather in Paris",
        "sunny and warm",
    ]
    # runs already in the history window are left out
    got = await memory.recall_messages(
        "weather in Paris", session_id="s1", user_id="alice", exclude_run_ids=["r2"]
    )
    assert "what is the weather in Paris" not in [m.text for m in got]
    # nothing similar enough
    assert (
        await memory.recall_messages("quantum chromodynamics", session_id="s1", user_id="alice")
        == []
    )

    user_scope = Memory(
        storage, recall=SemanticRecall(HashEmbedder(), top_k=5, message_range=0, scope="user")
    )
    texts = [
        m.text
        for m in await user_scope.recall_messages(
            "weather in Paris", session_id="s1", user_id="alice"
        )
    ]
    assert "the weather in Paris again" in texts and "what is the weather in Paris" in texts
    assert "weather in Paris for bob" not in texts

    # deleting a session deletes its indexed messages
    await storage.sessions.delete_session("s2")
    texts = [
        m.text
        for m in await user_scope.recall_messages(
            "weather in Paris", session_id="s1", user_id="alice"
        )
    ]
    assert "the weather in Paris again" not in texts


async def test_message_search_ranks_by_cosine(storage: Any) -> None:
    items = [
        MessageEmbedding("s", Message.user("a"), [1.0, 0.0, 0.0], run_id="r1", user_id="u"),
        MessageEmbedding("s", Message.user("b"), [0.8, 0.6, 0.0], run_id="r1", user_id="u"),
        MessageEmbedding("s", Message.user("c"), [0.0, 1.0, 0.0], run_id="r2", user_id="u"),
        MessageEmbedding("s", Message.user("d"), [0.0, 0.0, 1.0], run_id="r2", user_id="u"),
        MessageEmbedding("s", Message.user("other dims"), [1.0, 0.0], run_id="r3", user_id="u"),
    ]
    await storage.memory.add_message_embeddings(items)
    hits = await storage.memory.search_messages([1.0, 0.1, 0.0], session_id="s", top_k=3)
    assert [h.message.text for h in hits] == ["a", "b", "c"]
    assert hits[0].score == pytest.approx(0.995, abs=0.01)
    assert hits[0].score >= hits[1].score >= hits[2].score
    hits = await storage.memory.search_messages(
        [1.0, 0.1, 0.0], session_id="s", top_k=3, threshold=0.5
    )
    assert [h.message.text for h in hits] == ["a", "b"]
    hits = await storage.memory.search_messages(
        [1.0, 0.1, 0.0], user_id="u", top_k=5, exclude_run_ids=["r1"]
    )
    assert [h.message.text for h in hits] == ["c", "d"]
    around = await storage.memory.message_neighbours(hits[0], before=5, after=1)
    assert [h.message.text for h in around] == ["a", "b", "c", "d"]
    with pytest.raises(UserError):
        await storage.memory.search_messages([1.0], top_k=1)


async def test_working_memory_store_and_delete(storage: Any) -> None:
    await storage.memory.set_working_memory("user", "alice", "v1")
    await storage.memory.set_working_memory("user", "alice", "v2")
    assert await storage.memory.get_working_memory("user", "alice") == "v2"
    assert await storage.memory.get_working_memory("session", "alice") is None
    assert await storage.memory.delete_working_memory("user", "alice")
    assert not await storage.memory.delete_working_memory("user", "alice")


async def test_traces_and_scores(storage: Any) -> None:
    root = SpanRecord(
        "sp1", "t1", "agent_run", kind="agent_run", start_time=100.0, run_id="r1", session_id="s1"
    )
    child = SpanRecord(
        "sp2",
        "t1",
        "model_generation",
        parent_id="sp1",
        start_time=101.0,
        run_id="r1",
        attributes={"tokens": 5},
    )
    await storage.traces.write_spans([root, child])
    root.end_time, root.status = 105.0, "ok"
    await storage.traces.write_spans([root])  # written again when it ends
    trace = await storage.traces.get_trace("t1")
    assert [s.span_id for s in trace] == ["sp1", "sp2"]
    assert trace[0].end_time == 105.0 and trace[0].status == "ok"
    assert trace[1].attributes == {"tokens": 5} and trace[1].parent_id == "sp1"
    assert [s.span_id for s in await storage.traces.list_spans(run_id="r1")] == ["sp2", "sp1"]
    assert [s.span_id for s in await storage.traces.list_spans(session_id="s1")] == ["sp1"]

    await storage.scores.add_score(
        ScoreRecord(
            "sc1", "relevance", 0.8, run_id="r1", reason="ok", metadata={"m": 1}, created_at=10.0
        )
    )
    await storage.scores.add_score(
        ScoreRecord("sc2", "toxicity", 0.0, run_id="r1", created_at=20.0)
    )
    assert [s.score_id for s in await storage.scores.list_scores(run_id="r1")] == ["sc2", "sc1"]
    got = (await storage.scores.list_scores(scorer="relevance"))[0]
    assert got.score == 0.8 and got.reason == "ok" and got.metadata == {"m": 1}


async def test_prune_per_domain(storage: Any) -> None:
    from datetime import timedelta

    old_rec = RunRecord("old", "s-old", status="completed")
    await storage.sessions.finish_run(old_rec)
    live = RunRecord("live", "s-live")
    await storage.sessions.start_run(live, lease=600)
    await storage.traces.write_spans([SpanRecord("sp", "t", "x", start_time=1.0)])
    await storage.scores.add_score(ScoreRecord("sc", "s", 1.0, created_at=1.0))
    await storage.memory.add_user_memory(UserMemory("m", "u", "fact", created_at=1.0))
    from vivace.storage import WorkflowRunRecord

    await storage.workflows.create_run(WorkflowRunRecord("r", "w"))

    counts = await storage.prune(
        {"traces": timedelta(days=1), "scores": timedelta(days=1), "memory": timedelta(days=1)}
    )
    assert counts == {"traces": 1, "scores": 1, "memory": 1}
    assert await storage.traces.get_trace("t") == []
    # "runs" keeps running runs; age 0 means "everything before now"
    assert (await storage.prune({"runs": 0}))["runs"] == 1
    assert await storage.sessions.get_run("old") is None
    assert (await storage.sessions.get_run("live")).status == "running"
    assert (await storage.prune({"workflows": timedelta(days=1)}))["workflows"] == 0
    assert (await storage.prune({"sessions": timedelta(0)}))["sessions"] == 2
    assert await storage.sessions.list_sessions() == []
    assert await storage.sessions.get_run("live") is None
    with pytest.raises(UserError):
        await storage.prune({"nonsense": 1})


async def test_composite_routes_domains(tmp_path: Any, storage: Any) -> None:
    from vivace.storage import CompositeStorage, InMemoryStorage, SQLiteStorage

    traces = SQLiteStorage(tmp_path / "traces.db")
    mem = InMemoryStorage()
    comp = CompositeStorage(default=storage, traces=traces, memory=mem)
    async with comp:
        await comp.traces.write_spans([SpanRecord("sp", "t", "x")])
        assert len(await traces.traces.get_trace("t")) == 1
        assert await storage.traces.get_trace("t") == []
        await comp.sessions.finish_run(RunRecord("r", "s", status="completed"))
        assert (await storage.sessions.get_run("r")) is not None
        await comp.memory.set_working_memory("session", "s", "notes")
        assert await storage.memory.get_working_memory("session", "s") is None
        # deleting the session in the default backend deletes its memory in the other one
        assert await comp.sessions.delete_session("s")
        assert await mem.memory.get_working_memory("session", "s") is None
        assert "traces=SQLiteStorage" in repr(comp)
