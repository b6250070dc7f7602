"""``arun()`` of a run nobody streams (no storage, capabilities or resume) takes the plain
path: the steps of the event stream as one coroutine, the events counted but never built.
Every scenario here runs both ways - ``arun`` and a drained ``astream`` - on fresh agents
and must give the same result, down to the paused run's next event number; plus the tool
plan shared by agents that list the same tools, which must follow every change of
``agent.tools``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from vivace import Agent, Approve, Capability, ModelRetry, Reject, RunContext, tool
from vivace.messages import Message, ReasoningPart, TextPart
from vivace.models import ModelResponse, ToolDefinition
from vivace.testing import FunctionModel, ScriptedModel, call
from vivace.tools import DynamicToolset, SchemaTool


def get_weather(city: str) -> str:
    """Current weather.

    Args:
        city: City name.
    """
    return f"Sunny in {city}"


def get_time(city: str) -> str:
    """Current time in a city."""
    return f"Noon in {city}"


@tool(requires_approval=True)
def send_email(to: str) -> str:
    """Send an email."""
    return f"sent to {to}"


@tool(stop_after=True)
def lookup(key: str) -> dict[str, Any]:
    """Look a key up; its result is the run's output."""
    return {"key": key, "value": 42}


def count_visit(ctx: RunContext[Any], page: str) -> str:
    """Count a visit."""
    ctx.session_state.increment("visits")
    ctx.session_state["last"] = page
    return f"{page}: {ctx.session_state['visits']} 访问 🚀"


flaky_calls: list[int] = []


def flaky(n: int) -> str:
    """Fails until asked twice, then answers."""
    flaky_calls.append(n)
    if len(flaky_calls) % 2:
        raise ModelRetry("try again with the same n")
    return f"ok {n}"


def always_fails(n: int) -> str:
    """Always fails."""
    raise RuntimeError(f"broken {n}")


class City(BaseModel):
    name: str
    population: int


def _refusing(messages: list[Message], request: Any) -> ModelResponse:
    return ModelResponse(parts=[], refusal="I can't help with that.")


def _raising(messages: list[Message], request: Any) -> str:
    raise ConnectionError("model server went away")


def _reasoning(messages: list[Message], request: Any) -> Any:
    return [ReasoningPart("thinking 思考"), TextPart("answer \x07 with a bell")]


def _instructions(ctx: RunContext[Any]) -> str:
    return f"Help {ctx.deps['name']}."


def _echo_instructions(messages: list[Message], request: Any) -> str:
    return f"{request.instructions} | {len(messages)} messages"


def _child_agent(approval: bool) -> Agent[Any, Any]:
    tools = [send_email] if approval else [get_weather]
    first = (
        call("send_email", {"to": "ada"}, id="c-in")
        if approval
        else call("get_weather", {"city": "Oslo"}, id="c-in")
    )
    return Agent(model=ScriptedModel([first, "child done"]), name="child", tools=tools)


Scenario = Callable[[], tuple[Agent[Any, Any], Any, dict[str, Any]]]

SCENARIOS: dict[str, Scenario] = {
    "text answer": lambda: (
        Agent(model=ScriptedModel(["Hello 世界 👋"]), instructions="Be nice."),
        "hi",
        {},
    ),
    "one tool call": lambda: (
        Agent(
            model=ScriptedModel([call("get_weather", {"city": "Paris"}, id="c1"), "Sunny."]),
            tools=[get_weather],
        ),
        "weather?",
        {},
    ),
    "parallel tool calls": lambda: (
        Agent(
            model=ScriptedModel(
                [
                    [
                        call("get_weather", {"city": "Paris"}, id="c1"),
                        call("get_time", {"city": "東京"}, id="c2"),
                    ],
                    "Both.",
                ]
            ),
            tools=[get_weather, get_time],
        ),
        "both?",
        {},
    ),
    "unknown tool": lambda: (
        Agent(model=ScriptedModel([call("nope", {}, id="c1"), "ok"]), tools=[get_weather]),
        "x",
        {},
    ),
    "bad arguments": lambda: (
        Agent(
            model=ScriptedModel(
                [
                    call("get_weather", {"town": "x"}, id="c1"),
                    call("get_weather", {"city": "Rome"}, id="c2"),
                    "Done.",
                ]
            ),
            tools=[get_weather],
        ),
        "x",
        {},
    ),
    "model retry from a tool": lambda: (
        Agent(
            model=ScriptedModel(
                [call("flaky", {"n": 1}, id="c1"), call("flaky", {"n": 1}, id="c2"), "fine"]
            ),
            tools=[flaky],
        ),
        "x",
        {},
    ),
    "tool retries exceeded": lambda: (
        Agent(
            model=ScriptedModel([call("always_fails", {"n": i}, id=f"c{i}") for i in range(5)]),
            tools=[always_fails],
            tool_retries=1,
        ),
        "x",
        {},
    ),
    "max steps": lambda: (
        Agent(
            model=ScriptedModel(
                [call("get_weather", {"city": f"c{i}"}, id=f"c{i}") for i in range(5)]
            ),
            tools=[get_weather],
        ),
        "x",
        {"max_steps": 2},
    ),
    "stop_after tool": lambda: (
        Agent(model=ScriptedModel([call("lookup", {"key": "k"}, id="c1")]), tools=[lookup]),
        "x",
        {},
    ),
    "native structured output with a retry": lambda: (
        Agent(
            model=ScriptedModel(['{"name": "Oslo"}', '{"name": "Oslo", "population": 700000}']),
            output_type=City,
        ),
        "x",
        {},
    ),
    "tool-mode structured output with a retry": lambda: (
        Agent(
            model=ScriptedModel(
                [
                    "plain text first",
                    call("final_result", {"name": "Oslo"}, id="c1"),
                    call("final_result", {"name": "Oslo", "population": 1}, id="c2"),
                ]
            ),
            output_type=City,
            output_mode="tool",
        ),
        "x",
        {},
    ),
    "approval pause": lambda: (
        Agent(
            model=ScriptedModel(
                [
                    [
                        call("get_weather", {"city": "Paris"}, id="c1"),
                        call("send_email", {"to": "bob"}, id="c2"),
                    ],
                    "sent",
                ]
            ),
            tools=[get_weather, send_email],
        ),
        "x",
        {},
    ),
    "reasoning and text before a pause": lambda: (
        Agent(
            model=ScriptedModel(
                [
                    [
                        ReasoningPart("hmm"),
                        TextPart("Sending."),
                        call("send_email", {"to": "e"}, id="c1"),
                    ]
                ]
            ),
            tools=[send_email],
        ),
        "x",
        {},
    ),
    "refusal": lambda: (Agent(model=FunctionModel(_refusing)), "x", {}),
    "empty answers": lambda: (Agent(model=ScriptedModel([[], [], [], []])), "x", {}),
    "model raises": lambda: (Agent(model=FunctionModel(_raising)), "x", {}),
    "reasoning and a control character": lambda: (Agent(model=FunctionModel(_reasoning)), "x", {}),
    "callable instructions and deps": lambda: (
        Agent(model=FunctionModel(_echo_instructions), instructions=_instructions),
        "x",
        {"deps": {"name": "Zoë"}},
    ),
    "dynamic toolset": lambda: (
        Agent(
            model=ScriptedModel([call("get_time", {"city": "Lima"}, id="c1"), "Noon."]),
            tools=[get_weather, DynamicToolset(lambda ctx: [get_time], instructions="Use tools.")],
        ),
        "x",
        {},
    ),
    "session state and history": lambda: (
        Agent(
            model=ScriptedModel([call("count_visit", {"page": "首页"}, id="c1"), "counted"]),
            tools=[count_visit],
        ),
        "x",
        {
            "session_state": {"visits": 2},
            "message_history": [Message.user("earlier"), Message("assistant", [TextPart("yes")])],
            "session_id": "s-1",
            "user_id": "u-1",
        },
    ),
    "agent as a tool": lambda: (
        Agent(
            model=ScriptedModel([call("child", {"input": "go"}, id="c1"), "parent done"]),
            tools=[_child_agent(approval=False).as_tool()],
        ),
        "x",
        {},
    ),
    "agent as a tool that pauses": lambda: (
        Agent(
            model=ScriptedModel([call("child", {"input": "go"}, id="c1"), "parent done"]),
            tools=[_child_agent(approval=True).as_tool()],
        ),
        "x",
        {},
    ),
}


def _comparable(result: Any) -> dict[str, Any]:
    d = result.to_dict()
    for key in ("run_id", "trace_id", "span_id"):
        d.pop(key)
    if d["paused"]:
        for key in ("run_id", "trace_id", "span_id"):
            d["paused"].pop(key)
    return d


async def _both(make: Scenario) -> tuple[Any, Any, list[Any]]:
    flaky_calls.clear()
    agent, prompt, options = make()
    plain = await agent.arun(prompt, **options)
    flaky_calls.clear()
    agent, prompt, options = make()
    stream = agent.astream(prompt, stream_model=False, **options)
    events = [e async for e in stream]
    assert stream.result is not None
    return plain, stream.result, events


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_arun_gives_what_the_event_stream_gives(name: str) -> None:
    plain, streamed, events = await _both(SCENARIOS[name])
    assert _comparable(plain) == _comparable(streamed)
    ends = {"completed": "run_completed", "paused": "run_paused", "failed": "run_failed"}
    assert events[-1].type == ends[plain.status]
    if plain.paused is not None:  # the plain path numbered the events it never built
        assert plain.paused.seq == streamed.paused.seq == events[-1].seq + 1


async def test_the_scenarios_cover_every_outcome() -> None:
    seen = set()
    for make in SCENARIOS.values():
        agent, prompt, options = make()
        flaky_calls.clear()
        seen.add((await agent.arun(prompt, **options)).status)
    assert seen == {"completed", "failed", "paused"}


async def test_a_paused_plain_run_resumes_where_its_events_would_continue() -> None:
    plain, streamed, _ = await _both(SCENARIOS["approval pause"])
    for paused in (plain.paused, streamed.paused):
        agent = Agent(model=ScriptedModel(["sent"]), tools=[get_weather, send_email])
        stream = agent.aresume_stream(paused.to_dict(), {"c2": Approve()})
        events = [e async for e in stream]
        assert events[0].type == "run_resumed" and events[0].seq == paused.seq
        assert stream.result is not None and stream.result.output == "sent"


async def test_cancel_by_run_id_reaches_a_plain_run_in_a_thread_tool() -> None:
    import threading

    entered, release = threading.Event(), threading.Event()

    def blocking(x: int) -> str:
        """Blocks until released."""
        entered.set()
        release.wait(5)
        return "late"

    agent = Agent(
        model=ScriptedModel([call("blocking", {"x": 1}, id="c1"), "never"]),
        tools=[tool(threaded=True)(blocking)],
    )
    task = asyncio.create_task(agent.arun("x", run_id="plain-cancel"))
    await asyncio.to_thread(entered.wait, 5)
    assert Agent.cancel("plain-cancel") is True
    result = await asyncio.wait_for(task, 5)
    release.set()
    assert result.status == "cancelled" and result.error.message == "cancelled by request"
    assert Agent.cancel("plain-cancel") is False


# -- the tool plan shared by agents with the same tools ---------------------------------------


def _offered(model: FunctionModel | Any) -> list[list[str]]:
    return [[d.name for d in r.tools] for r in model.seen]


class _Recorder:
    """A model that answers at once and records the tool names each request offered."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.model = FunctionModel(self._answer)

    def _answer(self, messages: list[Message], request: Any) -> str:
        self.seen.append(request)
        return "ok"


async def test_changes_to_agent_tools_reach_the_next_run() -> None:
    rec = _Recorder()
    tools: list[Any] = [get_weather]
    agent = Agent(model=rec.model, tools=tools)
    twin = Agent(model=rec.model, tools=[get_weather])  # the same items: the same plan
    await agent.arun("x")
    tools.append(get_time)  # changed in place
    await agent.arun("x")
    await twin.arun("x")
    tools[0] = send_email  # an item replaced
    await agent.arun("x")
    agent.tools = [lookup]  # a new list
    await agent.arun("x")
    agent.tools = None
    await agent.arun("x")
    assert _offered(rec) == [
        ["get_weather"],
        ["get_weather", "get_time"],
        ["get_weather"],
        ["send_email", "get_time"],
        ["lookup"],
        [],
    ]


async def test_a_hook_that_changes_the_requests_tools_changes_only_its_own_run() -> None:
    class AddsATool(Capability):
        def before_model_request(self, ctx: RunContext[Any], request: Any) -> None:
            request.tools.append(ToolDefinition("extra", "added by a hook", {"type": "object"}))

    class AddsTools(Capability):
        def tools(self) -> list[Any]:
            return [get_time]

    rec = _Recorder()
    agent = Agent(model=rec.model, tools=[get_weather], capabilities=[AddsATool()])
    await agent.arun("x")
    await agent.arun("x")
    agent.capabilities = [AddsTools()]
    await agent.arun("x")
    agent.capabilities = None
    await agent.arun("x")
    assert _offered(rec) == [
        ["get_weather", "extra"],
        ["get_weather", "extra"],
        ["get_weather", "get_time"],
        ["get_weather"],
    ]


async def test_two_tools_of_one_name_still_fail_the_run_every_time() -> None:
    def other() -> str:
        return "x"

    other.__name__ = "get_weather"
    agent = Agent(model=ScriptedModel(["a", "b"]), tools=[get_weather, other])
    for _ in range(2):
        result = await agent.arun("x")
        assert result.status == "failed" and "two different tools" in result.error.message


async def test_agents_with_equal_but_distinct_tool_objects_call_their_own() -> None:
    class ByName(SchemaTool):
        """Equal to any tool of the same name (a value-equality a user class may have)."""

        def __eq__(self, other: object) -> bool:
            return isinstance(other, ByName) and other.name == self.name

        def __hash__(self) -> int:
            return hash(self.name)

    calls: list[str] = []

    def handler_for(who: str) -> Any:
        async def handler(arguments: dict[str, Any], ctx: Any) -> str:
            calls.append(who)
            return who

        return handler

    definition = ToolDefinition("greet", "Greets.", {"type": "object", "properties": {}})
    first, second = (
        ByName(definition, handler_for("first")),
        ByName(definition, handler_for("second")),
    )
    assert first == second and first is not second
    for t in (first, second):
        agent = Agent(model=ScriptedModel([call("greet", {}, id="c1"), "done"]), tools=[t])
        assert (await agent.arun("x")).status == "completed"
    assert calls == ["first", "second"]


def test_sync_runs_from_several_threads_share_one_agent() -> None:
    import threading

    def answer(messages: list[Message], request: Any) -> Any:
        if messages[-1].role == "tool":
            return f"done: {messages[-1].tool_results[0].content}"
        return call("get_weather", {"city": messages[-1].parts[0].text})

    agent = Agent(model=FunctionModel(answer), tools=[get_weather])
    outputs: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        outputs[n] = [agent.run(f"城市{n}-{i}").output for i in range(50)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outputs == {n: [f"done: Sunny in 城市{n}-{i}" for i in range(50)] for n in range(4)}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_a_thread_that_ran_agents_closes_its_event_loop_as_it_ends() -> None:
    import gc
    import threading

    agent = Agent(model=ScriptedModel(["a", "b", "c", "d", "e", "f"]))
    before = len(os.listdir("/proc/self/fd"))
    gc.disable()  # the loop must be closed as the thread ends, not by the collector
    try:
        for _ in range(3):
            t = threading.Thread(target=lambda: [agent.run("hi") for _ in range(2)])
            t.start()
            t.join()
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


# -- generated scripts: every combination the scenarios above do not spell out ----------------

_TEXTS = [
    "Done.",
    "好的 ✅",
    "tab\tand \x1b escape",
    '{"name": "Oslo", "population": 7}',
    '{"name": 1}',
]


# inline from the first call (a sync tool's first call otherwise goes to a thread, which
# would make the order of concurrent failures depend on timing)
_INLINE_TOOLS = [
    *(tool(threaded=False)(f) for f in (get_weather, get_time, flaky, always_fails)),
    send_email,
    lookup,
]


def _generated(seed: int) -> Scenario:
    """A random agent and script (seeded): turns of text, empty answers, reasoning, and one to
    three tool calls mixing good and bad arguments, retries, failures, unknown tools,
    approvals, ``stop_after`` and ``final_result``; random step and retry budgets and output
    modes. The script may run out (the model then fails the run): both paths must agree."""
    import random

    rnd = random.Random(seed)
    output = rnd.choice([None, None, "native", "tool"])
    calls = [
        lambda i: call("get_weather", {"city": rnd.choice(["Paris", "東京", "🚀"])}, id=i),
        lambda i: call("get_weather", {"town": "x"}, id=i),
        lambda i: call("get_weather", '{"city": ', id=i),
        lambda i: call("get_time", {"city": "Lima"}, id=i),
        lambda i: call("flaky", {"n": 1}, id=i),
        lambda i: call("always_fails", {"n": 2}, id=i),
        lambda i: call("nope", {}, id=i),
        lambda i: call("send_email", {"to": "ada"}, id=i),
        lambda i: call("lookup", {"key": "k"}, id=i),
        lambda i: call("final_result", {"name": "Oslo", "population": 3}, id=i),
        lambda i: call("final_result", {"name": "Oslo"}, id=i),
    ]
    turns: list[Any] = []
    for t in range(rnd.randint(1, 6)):
        kind = rnd.random()
        if kind < 0.3:
            turns.append(rnd.choice(_TEXTS))
        elif kind < 0.35:
            turns.append([])
        elif kind < 0.45:
            turns.append([ReasoningPart("hmm 🤔"), TextPart(rnd.choice(_TEXTS))])
        else:
            n = rnd.randint(1, 3)
            before = [
                p for p in (ReasoningPart("思考"), TextPart("Let me check.")) if rnd.random() < 0.2
            ]
            turns.append(before + [rnd.choice(calls)(f"c{t}_{i}") for i in range(n)])
    if rnd.random() < 0.6:  # most scripts end in an answer
        turns.append('{"name": "Oslo", "population": 7}' if output else "The end. 完")
    options: dict[str, Any] = {"max_steps": rnd.randint(1, 7)}
    tool_retries, output_retries = rnd.randint(0, 2), rnd.randint(0, 2)

    def make() -> tuple[Agent[Any, Any], Any, dict[str, Any]]:
        agent = Agent(
            model=ScriptedModel(turns),
            tools=_INLINE_TOOLS,
            output_type=City if output else None,
            output_mode=output if output == "tool" else None,
            tool_retries=tool_retries,
            output_retries=output_retries,
        )
        return agent, "go 走", options

    return make


async def test_generated_scripts_give_the_same_result_both_ways() -> None:
    statuses: dict[str, int] = {}
    for seed in range(400):
        plain, streamed, events = await _both(_generated(seed))
        assert _comparable(plain) == _comparable(streamed), f"seed {seed}"
        if plain.paused is not None:
            assert plain.paused.seq == streamed.paused.seq == events[-1].seq + 1, f"seed {seed}"
        statuses[plain.status] = statuses.get(plain.status, 0) + 1
    assert set(statuses) == {"completed", "failed", "paused"}, statuses


async def test_generated_paused_runs_resume_the_same_both_ways() -> None:
    """Every generated run that pauses is resumed - with random approvals, edited arguments
    and rejections, again while it keeps pausing - through ``aresume`` (events counted, not
    built) and ``aresume_stream``; both must give the same result and numbering."""
    import random

    resumed = 0
    for seed in range(400):
        make = _generated(seed)
        plain, streamed, _ = await _both(make)
        rnd = random.Random(seed)
        for _ in range(3):  # a resumed run may pause again
            if plain.paused is None:
                break
            assert streamed.paused is not None
            decisions = {
                c.id: rnd.choice([Approve(), Approve({"to": "zoë 🚀"}), Reject("不要 \x07")])
                for c in plain.paused.pending
            }
            state = list(flaky_calls)
            agent, _, _ = make()
            agent.model.position = plain.usage.requests  # the rest of the script
            nxt = await agent.aresume(plain.paused.to_dict(), decisions)
            flaky_calls[:] = state
            agent, _, _ = make()
            agent.model.position = streamed.usage.requests
            stream = agent.aresume_stream(streamed.paused.to_dict(), decisions)
            events = [e async for e in stream]
            assert stream.result is not None
            assert _comparable(nxt) == _comparable(stream.result), f"seed {seed}"
            assert events[0].seq == plain.paused.seq, f"seed {seed}"
            if nxt.paused is not None:
                assert nxt.paused.seq == stream.result.paused.seq == events[-1].seq + 1
            plain, streamed = nxt, stream.result
            resumed += 1
    assert resumed >= 30
