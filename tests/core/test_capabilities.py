"""Capabilities: instructions, tools and work around the run; every bit of a run's work is done
before its terminal event; a failure anywhere in the run is stored as a failed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vivace import Agent, GuardrailTripped, Hooks, RunContext
from vivace.agent import Capability
from vivace.errors import UnexpectedError
from vivace.storage import SQLiteStorage
from vivace.testing import FunctionModel, ScriptedModel, call


class Recorder(Capability):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def instructions(self, ctx: RunContext[Any], input: Any) -> str:
        return f"[{self.name}]"

    async def before_run(self, ctx: RunContext[Any], input: Any) -> None:
        self.log.append(f"{self.name}.before_run")

    def after_run(self, ctx: RunContext[Any], result: Any) -> None:
        self.log.append(f"{self.name}.after_run:{result.status}")


async def test_capabilities_add_instructions_in_order_after_the_agents() -> None:
    log: list[str] = []
    model = ScriptedModel(["ok"])
    agent = Agent(
        model=model,
        instructions="Base.",
        capabilities=[Recorder("a", log), Recorder("b", log)],
    )
    await agent.arun("x")
    assert model.requests[0].instructions == "Base.\n\n[a]\n\n[b]"
    assert log == ["a.before_run", "b.before_run", "a.after_run:completed", "b.after_run:completed"]


async def test_after_run_is_done_before_the_terminal_event() -> None:
    """A consumer that stops reading at run_completed has seen all of the run's work."""
    log: list[str] = []

    class Hook(Hooks):
        async def after_run(self, ctx: RunContext[Any], result: Any) -> None:
            log.append("after_run")

    stream = Agent(model=ScriptedModel(["done"]), hooks=[Hook()]).astream("x")
    async for event in stream:
        if event.type == "run_completed":
            assert log == ["after_run"]
            break
    else:  # pragma: no cover
        pytest.fail("no run_completed event")
    assert log == ["after_run"]


async def test_a_failing_after_run_fails_the_run_and_the_stored_record(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "v.db"))

    class Broken(Capability):
        def after_run(self, ctx: RunContext[Any], result: Any) -> None:
            raise ValueError("index down")

    stream = Agent(model=ScriptedModel(["done"]), storage=storage, capabilities=[Broken()]).astream(
        "x", session_id="s"
    )
    events = [e async for e in stream]
    assert events[-1].type == "run_failed"
    result = stream.result
    assert result is not None and result.status == "failed"
    assert isinstance(result.error, UnexpectedError)
    record = await storage.sessions.get_run(result.run_id)
    assert record is not None and record.status == "failed"
    assert record.error is not None and "ValueError: index down" in record.error["message"]
    await storage.close()


async def test_a_guardrail_in_after_run_blocks_the_run() -> None:
    class Guard(Capability):
        def after_run(self, ctx: RunContext[Any], result: Any) -> None:
            raise GuardrailTripped("leaked a secret")

    result = await Agent(model=ScriptedModel(["the password is x"]), capabilities=[Guard()]).arun(
        "x"
    )
    assert result.status == "blocked"
    with pytest.raises(GuardrailTripped):
        _ = result.output


async def test_a_model_raising_a_plain_exception_is_stored_failed(tmp_path: Path) -> None:
    """Regression (issue 8, item 8): the run was left `running` and read `incomplete`."""
    storage = SQLiteStorage(str(tmp_path / "v.db"))

    def broken(messages: Any, request: Any) -> Any:
        raise ValueError("boom")

    agent = Agent(model=FunctionModel(broken), storage=storage)
    result = await agent.arun("x", session_id="s")
    assert result.status == "failed"
    assert isinstance(result.error, UnexpectedError)
    assert result.error.details["exception_type"] == "builtins.ValueError"
    assert isinstance(result.error.__cause__, ValueError)
    with pytest.raises(UnexpectedError, match="ValueError: boom"):
        _ = result.output
    record = await storage.sessions.get_run(result.run_id)
    assert record is not None and record.status == "failed"
    assert record.error is not None and record.error["code"] == "unexpected_error"
    await storage.close()


async def test_a_hook_raising_a_plain_exception_fails_the_run() -> None:
    class Bad(Hooks):
        def before_model_request(self, ctx: RunContext[Any], request: Any) -> None:
            raise KeyError("oops")

    stream = Agent(model=ScriptedModel(["x"]), hooks=Bad()).astream("x")
    events = [e async for e in stream]
    assert events[-1].type == "run_failed"
    assert events[-1].to_dict()["error"]["code"] == "unexpected_error"


async def test_memory_is_a_capability_not_a_special_case() -> None:
    from vivace.memory import Memory, WorkingMemory
    from vivace.storage import InMemoryStorage

    memory = Memory(InMemoryStorage(), working=WorkingMemory(template="# Notes\n"))
    assert isinstance(memory, Capability)
    agent = Agent(model=ScriptedModel(["ok"]), memory=memory)
    assert agent.run_capabilities() == (memory,)
    assert agent.storage is memory.storage
    model = ScriptedModel([call("update_working_memory", {"content": "# Notes\n- x"}), "ok"])
    await Agent(model=model, memory=memory).arun("hi", session_id="s1")
    assert "update_working_memory" in [t.name for t in model.requests[0].tools]
    assert "# Notes" in (model.requests[0].instructions or "")


async def test_atomic_state_updates_work_without_storage_too() -> None:
    def count(ctx: RunContext[Any]) -> str:
        ctx.session_state.increment("n")
        ctx.session_state.append("seen", "x")
        return "ok"

    agent = Agent(ScriptedModel([call("count", {}), call("count", {}), "done"]), tools=[count])
    result = await agent.arun("go", session_state={"n": 5})
    assert result.session_state == {"n": 7, "seen": ["x", "x"]}
