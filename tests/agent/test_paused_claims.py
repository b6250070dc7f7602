"""Resuming a stored paused run: exactly one resumer wins and the others get
``RunStateError``; only the run's own user may resume it (``user_id=None`` included)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vivace import Agent, Approve, tool
from vivace.errors import RunNotFound
from vivace.storage import RunRecord, RunStateError, SessionOwnershipError, may_act
from vivace.testing import FunctionModel, call


@tool(requires_approval=True)
def transfer(amount: int) -> str:
    """Move money."""
    return f"moved {amount}"


def pay_then_answer(messages: list[Any], request: Any) -> Any:
    if messages[-1].role == "user":
        return call("transfer", {"amount": 10}, id="t1")
    return "done"


def make_agent(storage: Any) -> Agent:
    return Agent(model=FunctionModel(pay_then_answer), tools=[transfer], storage=storage)


async def test_concurrent_resumes_one_wins_the_others_get_run_state_error(
    storage_factory: Any,
) -> None:
    agents = [make_agent(storage_factory()) for _ in range(4)]  # one connection each
    paused = await agents[0].arun("pay", session_id="s", user_id="ann")
    assert paused.status == "paused"
    outcomes = await asyncio.gather(
        *(a.aresume(paused.run_id, {"t1": True}, user_id="ann") for a in agents),
        return_exceptions=True,
    )
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(done) == 1 and done[0].status == "completed"
    assert len(errors) == 3
    assert all(type(e) is RunStateError for e in errors), errors
    # and once it finished, resuming again is the same error (the run exists, it is not paused)
    with pytest.raises(RunStateError, match="completed"):
        await agents[1].aresume(paused.run_id, {"t1": True}, user_id="ann")
    with pytest.raises(RunNotFound):
        await agents[1].aresume("no-such-run", {"t1": True}, user_id="ann")
    record = await storage_factory().sessions.get_run(paused.run_id)
    assert record.status == "completed" and len(record.messages) == 4


async def test_only_the_runs_user_may_resume_it(storage: Any) -> None:
    agent = make_agent(storage)
    paused = await agent.arun("pay", session_id="s", user_id="ann")
    for intruder in (None, "mallory"):
        with pytest.raises(RunNotFound):
            await agent.aresume(paused.run_id, {"t1": True}, user_id=intruder)
        with pytest.raises(SessionOwnershipError):
            await storage.sessions.resume_run(paused.run_id, user_id=intruder)
    assert (await storage.sessions.get_run(paused.run_id)).status == "paused"
    result = await agent.aresume(paused.run_id, {"t1": Approve()}, user_id="ann")
    assert result.status == "completed"

    # a run without a user is resumed without one, and by no named user
    anonymous = await agent.arun("pay", session_id="anon")
    with pytest.raises(RunNotFound):
        await agent.aresume(anonymous.run_id, {"t1": True}, user_id="ann")
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.resume_run(anonymous.run_id, user_id="ann")
    assert (await agent.aresume(anonymous.run_id, {"t1": True})).status == "completed"


async def test_resume_run_with_the_storage_lease_and_the_one_ownership_rule(storage: Any) -> None:
    rec = RunRecord("p", "s", user_id="ann", status="paused", paused={"pending": []})
    await storage.sessions.finish_run(rec)
    with pytest.raises(SessionOwnershipError):
        await storage.sessions.resume_run("p")
    assert (await storage.sessions.resume_run("p", user_id="ann")).status == "running"
    with pytest.raises(RunStateError):
        await storage.sessions.resume_run("p", user_id="ann")


def test_may_act_is_exact_ownership() -> None:
    assert may_act("ann", "ann")
    assert may_act(None, None)
    assert not may_act("ann", None)
    assert not may_act("ann", "bob")
    assert not may_act(None, "ann")
