"""Free text round-trips losslessly on every backend (NUL and other control characters,
Chinese, emoji); every id the storage receives is checked by the one id rule
(:func:`vivace.identifiers.check_identifier`) and a bad one writes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from vivace import Agent
from vivace.errors import InvalidIdentifier
from vivace.messages import Message
from vivace.storage import (
    MessageEmbedding,
    RunRecord,
    SessionRecord,
    UserMemory,
)
from vivace.testing import FunctionModel

NASTY = "nul:\x00 bell:\x07 esc:\x1b del:\x7f c1:\x85 tab:\t nl:\n 中文 😀 \\ \" ' %s $1 \u2028 end"


async def test_free_text_round_trips_on_every_backend(storage: Any) -> None:
    # a whole agent run: message content, output, session state values
    def echo(messages: list[Message], request: Any) -> str:
        return "answer " + (messages[-1].text or "")

    agent = Agent(model=FunctionModel(echo), storage=storage)
    result = await agent.arun(
        NASTY, session_id="s", user_id="u 中文 😀", session_state={"v": NASTY, NASTY: [NASTY]}
    )
    assert result.status == "completed", result.error
    run = await storage.sessions.get_run(result.run_id)
    assert run.input["parts"][0]["text"] == NASTY
    assert [m.text for m in run.messages] == [NASTY, "answer " + NASTY]
    assert run.output == "answer " + NASTY
    session = await storage.sessions.get_session("s")
    assert session.state == {"v": NASTY, NASTY: [NASTY]}
    again = await agent.arun("next", session_id="s", user_id="u 中文 😀")
    assert again.session_state == {"v": NASTY, NASTY: [NASTY]}

    # the session name, working memory and user memories
    assert (await storage.sessions.rename_session("s", NASTY)).name == NASTY
    assert (await storage.sessions.get_session("s")).name == NASTY
    assert (await storage.sessions.list_sessions())[0].name == NASTY
    made = await storage.sessions.create_session(SessionRecord("named", name=NASTY))
    assert made.name == NASTY and (await storage.sessions.get_session("named")).name == NASTY
    for scope, owner in (("session", "s"), ("user", "u 中文 😀"), ("summary", "s")):
        await storage.memory.set_working_memory(scope, owner, NASTY)
        assert await storage.memory.get_working_memory(scope, owner) == NASTY
    mem = UserMemory("m-1", "u 中文 😀", NASTY, topics=[NASTY])
    await storage.memory.add_user_memory(mem, embedding=[1.0, 0.0])
    got = await storage.memory.get_user_memory("m-1", user_id="u 中文 😀")
    assert got.content == NASTY and got.topics == [NASTY]
    assert [m.content for m in await storage.memory.list_user_memories("u 中文 😀")] == [NASTY]
    found = await storage.memory.search_user_memories("u 中文 😀", "中文")
    assert [m.content for m in found] == [NASTY]
    updated = await storage.memory.update_user_memory(
        "m-1", user_id="u 中文 😀", content=NASTY + "!"
    )
    assert updated.content == NASTY + "!"
    await storage.memory.add_message_embeddings(
        [MessageEmbedding("s", Message.user(NASTY), [0.0, 1.0], user_id="u 中文 😀")]
    )
    hits = await storage.memory.search_messages([0.0, 1.0], session_id="s")
    assert hits[0].message.text == NASTY


BAD_IDS = ["", "a\x00b", "tab\there", "x" * 257, "esc\x1b", "c1\x85", "lone\ud800"]


def seam_calls(bad: str) -> list[Callable[[Any], Awaitable[Any]]]:
    """Every sessions call with ``bad`` in one id field."""
    good = "ok"
    return [
        lambda st: st.sessions.begin_run(RunRecord(bad, good)),
        lambda st: st.sessions.begin_run(RunRecord(good, bad)),
        lambda st: st.sessions.begin_run(RunRecord(good, good, user_id=bad)),
        lambda st: st.sessions.begin_run(RunRecord(good, good, agent_id=bad)),
        lambda st: st.sessions.begin_run(RunRecord(good, good, parent_run_id=bad)),
        lambda st: st.sessions.start_run(RunRecord(good, bad)),
        lambda st: st.sessions.finish_run(RunRecord(good, good, user_id=bad, status="completed")),
        lambda st: st.sessions.finish_run(RunRecord(bad, good, status="completed")),
        lambda st: st.sessions.load_context(bad),
        lambda st: st.sessions.load_context(good, user_id=bad),
        lambda st: st.sessions.resume_run(bad),
        lambda st: st.sessions.resume_run(good, user_id=bad),
        lambda st: st.sessions.heartbeat(bad),
        lambda st: st.sessions.request_cancel(bad),
        lambda st: st.sessions.cancel_requested(bad),
        lambda st: st.sessions.get_run(bad),
        lambda st: st.sessions.list_runs(bad),
        lambda st: st.sessions.list_runs(parent_run_id=bad),
        lambda st: st.sessions.get_session(bad),
        lambda st: st.sessions.get_session(good, user_id=bad),
        lambda st: st.sessions.create_session(SessionRecord(bad)),
        lambda st: st.sessions.create_session(SessionRecord(good, user_id=bad)),
        lambda st: st.sessions.list_sessions(user_id=bad),
        lambda st: st.sessions.list_sessions(agent_id=bad),
        lambda st: st.sessions.rename_session(bad, "name"),
        lambda st: st.sessions.update_state(bad, changes={"k": 1}),
        lambda st: st.sessions.delete_session(bad),
    ]


def memory_calls(bad: str) -> list[Callable[[Any], Awaitable[Any]]]:
    good = "ok"
    return [
        lambda st: st.memory.set_working_memory("session", bad, "text"),
        lambda st: st.memory.get_working_memory("user", bad),
        lambda st: st.memory.delete_working_memory("session", bad),
        lambda st: st.memory.add_user_memory(UserMemory(bad, good, "text")),
        lambda st: st.memory.add_user_memory(UserMemory(good, bad, "text")),
        lambda st: st.memory.add_user_memory(UserMemory(good, good, "text", agent_id=bad)),
        lambda st: st.memory.get_user_memory(bad, user_id=good),
        lambda st: st.memory.get_user_memory(good, user_id=bad),
        lambda st: st.memory.list_user_memories(bad),
        lambda st: st.memory.search_user_memories(bad, "q"),
        lambda st: st.memory.update_user_memory(bad, user_id=good, content="x"),
        lambda st: st.memory.delete_user_memory(good, user_id=bad),
        lambda st: st.memory.add_message_embeddings(
            [MessageEmbedding(bad, Message.user("x"), [1.0])]
        ),
        lambda st: st.memory.add_message_embeddings(
            [MessageEmbedding(good, Message.user("x"), [1.0], user_id=bad)]
        ),
        lambda st: st.memory.search_messages([1.0], session_id=bad),
        lambda st: st.memory.search_messages([1.0], user_id=bad),
        lambda st: st.memory.delete_session_data(bad),
        lambda st: st.events.append(bad, [{"seq": 0}]),
        lambda st: st.events.read(bad),
    ]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_bad_ids_are_refused_and_write_nothing(storage: Any, bad: str) -> None:
    calls = seam_calls(bad) + memory_calls(bad)
    for i, make in enumerate(calls):
        with pytest.raises(InvalidIdentifier) as info:
            await make(storage)
        assert info.value.field, i
    assert await storage.sessions.list_sessions() == []
    assert await storage.sessions.get_run("ok") is None
    assert await storage.memory.list_user_memories("ok") == []
    assert await storage.memory.get_working_memory("session", "ok") is None
    assert await storage.events.read("ok") == []


async def test_the_longest_valid_id_is_stored(storage: Any) -> None:
    longest = "长" * 256
    rec = RunRecord(longest, longest, agent_id=longest, user_id=longest, status="completed")
    await storage.sessions.finish_run(rec, state_changes={"k": 1})
    assert (await storage.sessions.get_run(longest)).user_id == longest
    assert (await storage.sessions.get_session(longest, user_id=longest)).state == {"k": 1}
    await storage.memory.set_working_memory("user", longest, "t")
    assert await storage.memory.get_working_memory("user", longest) == "t"


async def test_unpaired_surrogates_in_text_round_trip_on_every_backend(storage: Any) -> None:
    """Text from a broken decoder (lone surrogates, not encodable as UTF-8) is stored, not a
    crash of the run: JSON escapes it."""
    lone = "before \ud800 middle \udfff after 中文"

    def echo(messages: list[Message], request: Any) -> str:
        return "answer " + (messages[-1].text or "")

    agent = Agent(model=FunctionModel(echo), storage=storage)
    result = await agent.arun(lone, session_id="s", session_state={"v": lone})
    assert result.status == "completed", result.error
    run = await storage.sessions.get_run(result.run_id)
    assert [m.text for m in run.messages] == [lone, "answer " + lone]
    assert run.output == "answer " + lone
    session = await storage.sessions.get_session("s")
    assert session is not None and session.state == {"v": lone}
    await storage.memory.set_working_memory("session", "s", lone)
    assert await storage.memory.get_working_memory("session", "s") == lone
