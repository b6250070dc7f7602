"""Agents with memory: working memory, user memories and semantic recall, on every backend."""

from vivace import Agent
from vivace.memory import HashEmbedder, Memory, SemanticRecall, WorkingMemory
from vivace.testing import FunctionModel, ScriptedModel, call


async def test_working_memory_is_updated_by_tool_and_injected(storage):
    memory = Memory(storage, working=WorkingMemory(template="# Notes\n", scope="user"))
    model = ScriptedModel(
        [
            call("update_working_memory", {"content": "# Notes\n- likes green tea"}),
            "noted",
            "hi again",
        ]
    )
    agent = Agent(model=model, memory=memory, storage=storage)
    await agent.arun("I like green tea", session_id="a", user_id="u1")
    assert "update_working_memory" in [t.name for t in model.requests[0].tools]
    await agent.arun("hello", session_id="b", user_id="u1")  # another session, same user
    assert "likes green tea" in model.requests[-1].instructions


async def test_user_memories_tools_and_instructions(storage):
    memory = Memory(storage, user_memories=True)
    model = ScriptedModel([call("add_memory", {"content": "allergic to peanuts"}), "saved", "ok"])
    agent = Agent(model=model, memory=memory, storage=storage, instructions="Be careful.")
    await agent.arun("remember I'm allergic to peanuts", session_id="s1", user_id="ann")
    mems = await storage.memory.list_user_memories("ann")
    assert [m.content for m in mems] == ["allergic to peanuts"]
    await agent.arun("suggest a snack", session_id="s2", user_id="ann")
    ins = model.requests[-1].instructions
    assert ins.startswith("Be careful.") and "allergic to peanuts" in ins
    await agent.arun("x", session_id="s3", user_id="bob")  # other users see nothing of ann's
    assert model.requests[-1].instructions == "Be careful."


async def test_semantic_recall_across_sessions(storage):
    recall = SemanticRecall(HashEmbedder(), top_k=1, message_range=0, scope="user", threshold=0.2)
    memory = Memory(storage, recall=recall)
    agent = Agent(
        model=FunctionModel(lambda m, r: "ok"), memory=memory, storage=storage, history_runs=0
    )
    await agent.arun("my cat is called Miso", session_id="old", user_id="u")
    await agent.arun("the weather is nice today", session_id="old", user_id="u")
    seen = {}

    def capture(messages, request):
        seen["instructions"] = request.instructions
        return "ok"

    agent2 = Agent(model=FunctionModel(capture), memory=memory, storage=storage)
    await agent2.arun("what is my cat called?", session_id="new", user_id="u")
    assert "my cat is called Miso" in seen["instructions"]
    assert "weather" not in seen["instructions"]


async def test_session_summary_covers_runs_that_left_the_window(storage):
    from vivace.memory import SessionSummary

    summarizer = ScriptedModel(
        ["Ann likes tea and lives in Oslo.", "Ann likes tea, lives in Oslo, owns a cat."]
    )
    memory = Memory(storage, summary=SessionSummary(summarizer, every_runs=2))
    seen = []

    def answer(messages, request):
        seen.append(request.instructions or "")
        return "ok"

    agent = Agent(model=FunctionModel(answer), memory=memory, storage=storage, history_runs=2)
    for text in [
        "I like tea",
        "I live in Oslo",
        "I have a cat",
        "it is called Miso",
        "hello",
        "again",
    ]:
        await agent.arun(text, session_id="long", user_id="ann")
    # runs 1-2 left the window after run 4, runs 3-4 after run 6: two summaries
    assert len(summarizer.requests) == 2
    first_prompt = summarizer.requests[0].messages[0].text
    assert "user: I like tea" in first_prompt and "user: I live in Oslo" in first_prompt
    assert "I have a cat" not in first_prompt  # still inside the window then
    second_prompt = summarizer.requests[1].messages[0].text
    assert "Ann likes tea and lives in Oslo." in second_prompt  # builds on the previous one
    assert "user: I have a cat" in second_prompt
    assert seen[3] == ""  # before any summary
    assert "Ann likes tea and lives in Oslo." in seen[4]
    await storage.sessions.delete_session("long")
    assert await memory.summary.load(storage, "long") is None
