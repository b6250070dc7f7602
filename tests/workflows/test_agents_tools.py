"""Agents, tools and workflows as steps; tool approvals as suspensions; a workflow as a tool;
time travel."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from vivace import Agent, tool
from vivace.testing import EchoModel, FunctionModel, ScriptedModel, call
from vivace.workflows import Step, StepContext, Workflow, step

sent: list[str] = []


@tool(requires_approval=True)
def send_email(to: str) -> str:
    """Send an email."""
    sent.append(to)
    return f"sent to {to}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    sent.clear()


class Summary(BaseModel):
    title: str
    words: int


@step
def shout(text: str) -> str:
    return text.upper()


async def test_agent_step_streams_nested_events_with_path_and_trace() -> None:
    agent = Agent(EchoModel(), name="echoer")
    inner = Workflow("inner", input=str).then(agent)
    wf = Workflow("outer", input=str).then(shout).then(inner)
    stream = wf.astream("hello")
    events = [e async for e in stream]
    r = stream.result
    assert r.status == "completed" and r.output == "echo: HELLO"
    nested = [e for e in events if e.type in ("run_started", "text_delta", "run_completed")]
    assert nested and all(e.path == "inner.echoer" for e in nested)
    d = nested[0].to_dict()
    assert d["run_id"] == r.run_id and d["path"] == "inner.echoer"
    assert d["parent_run_id"] == r.run_id  # the agent run is the workflow's child
    assert d["trace_id"] == r.trace_id and d["span_id"] != r.span_id
    assert d["agent_run_id"] != r.run_id and d["agent_seq"] == 0
    assert [e.seq for e in events] == list(range(len(events)))  # one sequence for all


async def test_agent_step_typed_output_prompt_and_usage() -> None:
    def answer(messages: Any, request: Any) -> str:
        return '{"title": "T", "words": 3}'

    agent = Agent(FunctionModel(answer), name="summarizer", output_type=Summary)
    wf = Workflow("s", input=int).then(
        Step.from_agent(agent, prompt=lambda n: f"summarize item {n}")
    )
    r = await wf.arun(7)
    assert r.output == Summary(title="T", words=3)
    assert r.usage is not None and r.usage.requests == 1
    assert r.steps["summarizer"].usage["requests"] == 1


async def test_tool_approval_in_an_agent_step_suspends_and_resumes(wf_storage: Any) -> None:
    model = ScriptedModel([[call("send_email", {"to": "bob@x"}, id="c1")], "done"])
    agent = Agent(model, name="mailer", tools=[send_email])
    wf = Workflow("mail", input=str, storage=wf_storage).then(agent).then(shout)
    r = await wf.arun("email bob")
    assert r.status == "suspended"
    s = r.suspended[0]
    assert s.path == "mailer" and s.kind == "approval"
    assert s.payload["pending"][0]["name"] == "send_email"
    assert sent == []
    done = await wf.aresume(r.run_id, step="mailer", data={"c1": True})
    assert done.status == "completed" and done.output == "DONE"
    assert sent == ["bob@x"]
    # the resumed agent continued where it paused: its second turn saw the tool result
    assert model.requests[1].messages[-1].tool_results[0].name == "send_email"


async def test_rejected_approval() -> None:
    model = ScriptedModel([[call("send_email", {"to": "eve@x"}, id="c9")], "ok, not sent"])
    agent = Agent(model, name="mailer", tools=[send_email])
    wf = Workflow("mail2", input=str).then(agent)
    r = await wf.arun("email eve")
    done = await wf.aresume(r.run_id, data={"c9": {"approved": False, "reason": "no"}})
    assert done.output == "ok, not sent" and sent == []


async def test_tool_step_and_workflow_as_a_tool() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    class Pair(BaseModel):
        a: int
        b: int

    wf = (
        Workflow("adder", input=Pair)
        .then(Step.from_tool(add))
        .then(step(lambda n: n * 10, id="times"))
    )
    assert (await wf.arun({"a": 2, "b": 3})).output == 50
    # the workflow as a tool of an agent: the run joins the agent's trace
    seen: dict[str, Any] = {}

    @step
    def record(p: Pair, ctx: StepContext) -> int:
        seen["trace"] = ctx.trace_id
        return p.a * p.b

    times = Workflow("multiply", input=Pair, description="Multiply two numbers.").then(record)
    model = ScriptedModel([[call("multiply", {"a": 6, "b": 7})], "42 it is"])
    agent = Agent(model, tools=[times.as_tool()])
    result = await agent.arun("what is 6*7?")
    assert result.output == "42 it is"
    tool_result = model.requests[1].messages[-1].tool_results[0]
    assert "42" in str(tool_result.content)
    assert seen["trace"] == result.trace_id
    assert times.as_tool().definition().parameters["properties"]["a"]["type"] == "integer"


async def test_time_travel_reruns_from_a_step_with_recorded_inputs(wf_storage: Any) -> None:
    ran: list[str] = []

    @step
    def first(n: int, ctx: StepContext) -> int:
        ran.append(ctx.path)
        ctx.state["first"] = n
        return n + 1

    @step
    def second(n: int, ctx: StepContext) -> int:
        ran.append(ctx.path)
        return n * 2

    @step
    def third(n: int, ctx: StepContext) -> int:
        ran.append(ctx.path)
        if ctx.state.get("fail", True) and n == 4:
            raise RuntimeError("flaky")
        return n + 100

    wf = Workflow("tt", input=int, storage=wf_storage).then(first).then(second).then(third)
    r = await wf.arun(1, state={"fail": True})
    assert r.status == "failed" and r.error.step == "third"
    ran.clear()
    again = await wf.time_travel(r.run_id, step="second", input=5)
    assert ran == ["second", "third"]  # first kept its recorded output
    assert again.status == "completed" and again.output == 110
    assert again.origin_run_id == r.run_id and again.run_id != r.run_id
    assert again.state == {"fail": True, "first": 1}
    ran.clear()
    replay = await wf.time_travel(r.run_id, step="third")  # same recorded input: 4
    assert ran == ["third"] and replay.status == "failed"
