"""Runs carry their trace context (``trace_id``, ``span_id``, ``parent_run_id``) on every
backend, and ``list_runs`` finds a run's children."""

from __future__ import annotations

from typing import Any

import pytest

from vivace import Agent
from vivace.agent.session import SessionBinding
from vivace.errors import UserError
from vivace.storage import RunRecord
from vivace.testing import EchoModel

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_trace_context_is_stored_and_read_back(storage: Any) -> None:
    parent = RunRecord("parent", "s", user_id="u", trace_id=TRACE, span_id="00f067aa0ba902b7")
    await storage.sessions.begin_run(parent)
    children = []
    for i, session in enumerate(("s", "other", "s")):
        child = RunRecord(
            f"child-{i}",
            session,
            user_id="u",
            trace_id=TRACE,
            span_id=f"{i:016x}",
            parent_run_id="parent",
        )
        await storage.sessions.begin_run(child)
        child.status = "completed"
        await storage.sessions.finish_run(child)
        children.append(child)
    parent.status = "completed"
    await storage.sessions.finish_run(parent)

    got = await storage.sessions.get_run("child-1")
    assert (got.trace_id, got.span_id, got.parent_run_id) == (TRACE, f"{1:016x}", "parent")
    assert got.to_dict()["parent_run_id"] == "parent"
    assert RunRecord.from_dict(got.to_dict()) == got
    top = await storage.sessions.get_run("parent")
    assert (top.trace_id, top.span_id, top.parent_run_id) == (TRACE, "00f067aa0ba902b7", None)

    found = await storage.sessions.list_runs(parent_run_id="parent")
    assert [r.run_id for r in found] == ["child-0", "child-1", "child-2"]
    in_s = await storage.sessions.list_runs("s", parent_run_id="parent")
    assert [r.run_id for r in in_s] == ["child-0", "child-2"]
    assert [r.run_id for r in await storage.sessions.list_runs("s")] == [
        "parent",
        "child-0",
        "child-2",
    ]
    last = await storage.sessions.list_runs(parent_run_id="parent", limit=1)
    assert [r.run_id for r in last] == ["child-2"]
    assert await storage.sessions.list_runs(parent_run_id="nobody") == []
    with pytest.raises(UserError):
        await storage.sessions.list_runs()


async def test_session_binding_sets_the_trace_context(storage: Any) -> None:
    agent = Agent(EchoModel(), storage=storage, name="a")
    binding = await SessionBinding.begin(
        agent,
        storage,
        "r1",
        "s",
        "u",
        {"role": "user", "parts": [{"kind": "text", "text": "hi"}]},
        trace_id=TRACE,
        span_id="00f067aa0ba902b7",
        parent_run_id="p0",
    )
    assert binding.record.lease_expires_at is not None
    run = await storage.sessions.get_run("r1")
    assert (run.trace_id, run.span_id, run.parent_run_id) == (TRACE, "00f067aa0ba902b7", "p0")
    plain = await SessionBinding.begin(agent, storage, "r2", "s", "u", None)
    run = await storage.sessions.get_run(plain.record.run_id)
    assert (run.trace_id, run.span_id, run.parent_run_id) == (None, None, None)
