"""Agents with storage: sessions continue across agents, storages and processes."""

import subprocess
import sys
import textwrap

import pytest

from vivace import Agent, Approve, RunContext, tool
from vivace.errors import NotFound, RunNotFound
from vivace.storage import RunStateError, SessionOwnershipError, StateNotSerializableError
from vivace.testing import FunctionModel, ScriptedModel, call


def recall(messages, request):
    """Answers with everything the user said so far in the conversation it was sent."""
    said = [m.text for m in messages if m.role == "user" and m.text]
    return " | ".join(said)


async def test_history_is_loaded_and_run_appended(storage):
    agent = Agent(model=FunctionModel(recall), storage=storage, name="bot")
    r1 = await agent.arun("my name is Ann", session_id="s1", user_id="u1")
    assert r1.output == "my name is Ann"
    # a fresh agent object, as a stateless server builds per request
    r2 = await Agent(model=FunctionModel(recall), storage=storage, name="bot").arun(
        "what is my name?", session_id="s1", user_id="u1"
    )
    assert r2.output == "my name is Ann | what is my name?"
    runs = await storage.sessions.list_runs("s1")
    assert [r.run_id for r in runs] == [r1.run_id, r2.run_id]
    assert all(r.status == "completed" for r in runs)
    assert runs[1].output == "my name is Ann | what is my name?"
    assert [m.role for m in runs[1].messages] == ["user", "assistant"]
    session = await storage.sessions.get_session("s1")
    assert session.agent_id == "bot" and session.user_id == "u1"


async def test_history_window_is_bounded(storage):
    agent = Agent(model=FunctionModel(recall), storage=storage, history_runs=2)
    for i in range(5):
        result = await agent.arun(f"m{i}", session_id="s")
    assert result.output == "m2 | m3 | m4"


async def test_session_id_is_created_when_missing(storage):
    result = await Agent(model=FunctionModel(recall), storage=storage).arun("hi")
    assert result.session_id
    assert (await storage.sessions.get_session(result.session_id)) is not None


async def test_tools_change_session_state_and_it_persists(storage):
    def add_item(ctx: RunContext, item: str) -> list:
        ctx.session_state.setdefault("cart", []).append(item)
        return ctx.session_state["cart"]

    model = ScriptedModel(
        [call("add_item", {"item": "apple"}), "ok", call("add_item", {"item": "pear"}), "ok"]
    )
    agent = Agent(model=model, tools=[add_item], storage=storage)
    r1 = await agent.arun("add apple", session_id="cart")
    assert r1.session_state == {"cart": ["apple"]}
    r2 = await agent.arun("add pear", session_id="cart")
    assert r2.session_state == {"cart": ["apple", "pear"]}
    assert (await storage.sessions.get_session("cart")).state == {"cart": ["apple", "pear"]}


async def test_state_that_cannot_be_stored_fails_run_and_changes_nothing(storage):
    def put(ctx: RunContext, key: str) -> str:
        ctx.session_state[key] = object()
        return "stored"

    agent = Agent(
        model=ScriptedModel(["first", call("put", {"key": "bad"}), "ok"]),
        tools=[put],
        storage=storage,
    )
    await agent.arun("x", session_id="s", session_state={"keep": 1})
    result = await agent.arun("y", session_id="s")
    assert result.status == "failed"
    assert isinstance(result.error, StateNotSerializableError)
    assert (await storage.sessions.get_session("s")).state == {"keep": 1}
    runs = await storage.sessions.list_runs("s")
    assert runs[-1].status == "failed" and runs[-1].error["type"] == "StateNotSerializableError"


async def test_other_users_session_is_refused(storage):
    agent = Agent(model=FunctionModel(recall), storage=storage)
    await agent.arun("secret", session_id="private", user_id="alice")
    with pytest.raises(SessionOwnershipError):
        await agent.arun("let me in", session_id="private", user_id="mallory")
    runs = await storage.sessions.list_runs("private")
    assert len(runs) == 1


@tool(requires_approval=True)
def transfer(amount: int) -> str:
    """Move money."""
    return f"moved {amount}"


async def test_paused_run_resumes_by_id_from_another_agent_and_only_once(storage_factory):
    st1 = storage_factory()
    agent1 = Agent(
        model=ScriptedModel([call("transfer", {"amount": 10}, id="t1")]),
        tools=[transfer],
        storage=st1,
    )
    paused = await agent1.arun("pay", session_id="pay", user_id="u")
    assert paused.status == "paused"
    record = await st1.sessions.get_run(paused.run_id)
    assert record.status == "paused" and record.paused["pending"][0]["name"] == "transfer"

    st2 = storage_factory()  # another connection to the same database, as another worker has
    agent2 = Agent(model=ScriptedModel(["done"]), tools=[transfer], storage=st2)
    result = await agent2.aresume(
        paused.run_id, {"t1": Approve(arguments={"amount": 5})}, user_id="u"
    )
    assert result.status == "completed" and result.output == "done"
    assert result.messages[2].tool_results[0].content == "moved 5"
    record = await st2.sessions.get_run(paused.run_id)
    assert record.status == "completed" and len(record.messages) == 4
    with pytest.raises(RunStateError, match="completed"):
        await agent2.aresume(paused.run_id, {"t1": True}, user_id="u")
    with pytest.raises((RunNotFound, NotFound)):
        await agent2.aresume("no-such-run", {})


async def test_storage_url_string(tmp_path):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    agent = Agent(model=FunctionModel(recall), storage=url)
    await agent.arun("one", session_id="s")
    result = await Agent(model=FunctionModel(recall), storage=url).arun("two", session_id="s")
    assert result.output == "one | two"


def test_conversation_continues_in_a_second_process(tmp_path):
    """The README's example: two separate processes, one SQLite file."""
    script = textwrap.dedent(
        """
        import sys
        from vivace import Agent
        from vivace.testing import FunctionModel

        def recall(messages, request):
            return " | ".join(m.text for m in messages if m.role == "user")

        agent = Agent(model=FunctionModel(recall), storage="sqlite:///" + sys.argv[1])
        print(agent.run(sys.argv[2], session_id="chat-1").output)
        """
    )
    app = tmp_path / "app.py"
    app.write_text(script)
    db = str(tmp_path / "chat.db")
    out1 = subprocess.run(
        [sys.executable, str(app), db, "I like tea"], capture_output=True, text=True
    )
    assert out1.returncode == 0, out1.stderr
    out2 = subprocess.run(
        [sys.executable, str(app), db, "what do I like?"], capture_output=True, text=True
    )
    assert out2.returncode == 0, out2.stderr
    assert out2.stdout.strip() == "I like tea | what do I like?"
    assert out1.stdout.strip() == "I like tea"  # the first process had no history
