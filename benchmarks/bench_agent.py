"""Vivace vs Agno: agent construction, memory, import, tool schemas and per-run overhead.

Run from the repo root (creates/reuses ``.bench-venv/`` with agno 3.1.10 + openai)::

    python benchmarks/bench_agent.py            # 3 alternating rounds, about 1.5 minutes
    python benchmarks/bench_agent.py --quick    # 1 shorter round, about 15 s, noisier
    python benchmarks/bench_agent.py --markdown --json results.json

Each runtime is measured in its own fresh worker process (``--worker vivace|agno|floor``),
so neither pays for the other's imports or heap; the parent prints them side by side.

The **run-loop floor** (``--worker floor``) is a hand-written async function that does what a
two-step run does and nothing else: call the in-process model, run the tool, call the model
again, build the result (plain dicts, no framework). Its sync ``run`` drives that function
with one pass of a kept event loop, the least a sync call into async code costs.
``--profile`` adds a cProfile of Vivace's ``arun`` and ``run`` (top functions); ``--parts``
takes a Vivace run apart (its events, the model, the same run hand-written with the objects
every run makes - what is left is the loop's own code -, the sync driver).
Ratios are "times better than Agno" (Agno / Vivace): on a noisy 2-core machine compare the
ratios, not the absolute figures. See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FloorRow,
    Row,
    atime_per_call,
    fresh_process_times,
    kept_bytes_per_object,
    machine_note,
    peak_bytes_per_call,
    print_table,
    run_worker,
    time_per_call,
)
from _venv import REPO_ROOT, in_venv, reexec_in_venv

AGNO_REQUIREMENTS = ["agno==3.1.10", "openai"]
PROMPT = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."

TOOL_CALLS = 0


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city.
    """
    global TOOL_CALLS
    TOOL_CALLS += 1
    return f"Sunny in {city}."


def weather_model() -> Any:
    """Vivace's in-process model of the two-step run: asks for ``get_weather`` first, then
    answers. The same script for every Vivace measurement and the floor."""
    from vivace.testing import FunctionModel, call

    def script(messages: list[Any], request: Any) -> Any:
        if messages[-1].role == "tool":
            return ANSWER
        return call("get_weather", {"city": "Paris"}, id="call_1")

    return FunctionModel(script)


async def _get_weather_async(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city.
    """
    global TOOL_CALLS
    TOOL_CALLS += 1
    return f"Sunny in {city}."


_get_weather_async.__name__ = "get_weather"  # the same tool, as a coroutine function


def fresh_copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A new function object with the same code, doc and annotations (defeats per-function
    caches on both sides, so the "first build" is really a first build)."""
    f = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    f.__kwdefaults__ = fn.__kwdefaults__
    f.__doc__ = fn.__doc__
    f.__annotations__ = dict(fn.__annotations__)
    f.__qualname__ = fn.__qualname__
    f.__module__ = fn.__module__
    return f


class Sizes:
    """Iteration counts for a full or a --quick run."""

    def __init__(self, quick: bool) -> None:
        q = quick
        self.construct_number = 500 if q else 2000
        self.construct_repeat = 9 if q else 31
        self.kept_n = 500 if q else 2000
        self.peak_samples = 10 if q else 30
        self.schema_first = 30 if q else 100
        self.schema_first_repeat = 3 if q else 7
        self.schema_cached_number = 500 if q else 2000
        self.schema_cached_repeat = 5 if q else 15
        self.run_warmup = 20 if q else 50
        self.run_number = 20 if q else 50
        self.run_repeat = 7 if q else 21
        self.import_runs = 3 if q else 9


def _first_build(build: Callable[[Callable[..., Any]], Any], s: Sizes) -> float:
    samples = []
    for _ in range(s.schema_first_repeat):
        fns = [fresh_copy(get_weather) for _ in range(s.schema_first)]
        gc.collect()
        t0 = time.perf_counter()
        for f in fns:
            build(f)
        samples.append((time.perf_counter() - t0) / len(fns))
    return statistics.median(samples)


def _runs(
    arun: Callable[[], Any],
    run: Callable[[], Any],
    fresh: Callable[[], Any],
    arun_async_tool: Callable[[], Any],
    s: Sizes,
) -> dict[str, float]:
    """Median seconds per two-step run: ``arun`` (same agent), ``fresh`` (a new agent per
    run, the server shape), ``arun_async_tool`` (the tool as ``async def``), then the sync
    ``run``; checks the tool ran every time."""
    global TOOL_CALLS
    TOOL_CALLS = 0
    out: dict[str, float] = {}

    async def async_part() -> None:
        out["arun"] = (
            await atime_per_call(
                arun, number=s.run_number, repeat=s.run_repeat, warmup=s.run_warmup
            )
        )[0]

        out["arun_fresh_agent"] = (
            await atime_per_call(fresh, number=s.run_number, repeat=s.run_repeat, warmup=5)
        )[0]
        out["arun_async_tool"] = (
            await atime_per_call(
                arun_async_tool, number=s.run_number, repeat=s.run_repeat, warmup=s.run_warmup
            )
        )[0]

    asyncio.run(async_part())
    out["run"] = time_per_call(run, number=s.run_number, repeat=s.run_repeat, warmup=s.run_warmup)[
        0
    ]
    expected = 3 * (s.run_warmup + s.run_number * s.run_repeat) + 5 + s.run_number * s.run_repeat
    if expected != TOOL_CALLS:
        raise SystemExit(f"the tool ran {TOOL_CALLS} times, expected {expected}")
    return out


# -- Vivace ------------------------------------------------------------------------------------


def worker_vivace(s: Sizes) -> dict[str, Any]:
    """All in-process measurements for Vivace."""
    from vivace import Agent
    from vivace.tools.tool import as_tool

    res: dict[str, Any] = {}

    def make_tools() -> Any:
        return Agent(model="openai/gpt-4o", tools=[get_weather])

    def make_bare() -> Any:
        return Agent()

    for key, make in (("tools", make_tools), ("bare", make_bare)):
        res[f"construct_{key}"] = time_per_call(
            make, number=s.construct_number, repeat=s.construct_repeat, warmup=1000
        )[0]
        res[f"kept_{key}"] = kept_bytes_per_object(make, s.kept_n)
        res[f"peak_{key}"] = peak_bytes_per_call(make, samples=s.peak_samples)

    res["schema_first"] = _first_build(lambda f: as_tool(f).definition(), s)
    res["schema_cached"] = time_per_call(
        lambda: as_tool(get_weather).definition(),
        number=s.schema_cached_number,
        repeat=s.schema_cached_repeat,
        warmup=10,
    )[0]

    model = weather_model()
    agent = Agent(model=model, tools=[get_weather])
    first = agent.run(PROMPT)
    if first.output != ANSWER or first.usage.tool_calls != 1:
        raise SystemExit(f"unexpected Vivace result: {first!r}")

    async def arun() -> Any:
        return await agent.arun(PROMPT)

    def run() -> Any:
        return agent.run(PROMPT)

    async def fresh() -> Any:
        return await Agent(model=model, tools=[get_weather]).arun(PROMPT)

    async_agent = Agent(model=model, tools=[_get_weather_async])

    async def arun_async_tool() -> Any:
        return await async_agent.arun(PROMPT)

    res.update(_runs(arun, run, fresh, arun_async_tool, s))
    import vivace

    res["version"] = vivace.__version__
    return res


# -- the floor ---------------------------------------------------------------------------------


def worker_floor(s: Sizes) -> dict[str, Any]:
    """The run-loop floor: the same two-step run hand-written, no framework.

    It calls **the same in-process model** Vivace's run calls (``FunctionModel`` with the
    same script, Vivace's ``Message``/``ModelRequest`` types, the tool definition built once)
    and runs the tool directly: what any run must do. ``*_bare`` figures are the same loop
    on plain dicts with a plain function as the model (a lower bound that pays nothing for
    the model's own types)."""
    floor_arun = _floor_run(weather_model())
    tools = {"get_weather": get_weather}

    def bare_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
        if messages[-1]["role"] == "tool":
            return {"role": "assistant", "content": ANSWER, "usage": (10, 5)}
        call_ = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
        return {"role": "assistant", "tool_calls": [call_], "usage": (10, 5)}

    async def bare_arun(prompt: str = PROMPT) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        tokens = [0, 0]
        while True:
            reply = bare_model(messages)
            tokens[0] += reply["usage"][0]
            tokens[1] += reply["usage"][1]
            messages.append(reply)
            calls = reply.get("tool_calls")
            if not calls:
                break
            for c in calls:
                result = tools[c["name"]](**c["arguments"])
                messages.append({"role": "tool", "tool_call_id": c["id"], "content": result})
        return {"output": reply["content"], "messages": messages, "usage": tokens}

    loop = asyncio.new_event_loop()

    def drive(coro: Any) -> Any:
        # the least a sync call into async code costs: one pass of a kept loop
        # (stop() before run_forever() polls once), as Vivace's run() does
        task = loop.create_task(coro)
        loop.stop()
        loop.run_forever()
        return task.result() if task.done() else loop.run_until_complete(task)

    def floor_run(prompt: str = PROMPT) -> dict[str, Any]:
        return drive(floor_arun(prompt))

    def bare_run(prompt: str = PROMPT) -> dict[str, Any]:
        return drive(bare_arun(prompt))

    if floor_run()["output"] != ANSWER or bare_run()["output"] != ANSWER:
        raise SystemExit("the floor's run gave the wrong answer")
    res: dict[str, Any] = {}
    res.update(_runs(floor_arun, floor_run, floor_arun, floor_arun, s))
    bare = _runs(bare_arun, bare_run, bare_arun, bare_arun, s)
    res["arun_bare"], res["run_bare"] = bare["arun"], bare["run"]
    loop.close()
    return res


def _floor_run(model: Any) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The run-loop floor's ``arun``: the two-step run hand-written around ``model``."""
    from vivace.messages import Message, ToolResultPart
    from vivace.models import ModelRequest
    from vivace.tools.tool import as_tool

    definitions = [as_tool(get_weather).definition()]
    tools = {"get_weather": get_weather}

    async def floor_arun(prompt: str = PROMPT) -> dict[str, Any]:
        messages = [Message.user(prompt)]
        usage: list[Any] = []
        while True:
            response = await model.request(ModelRequest(messages, tools=definitions))
            usage.append(response.usage)
            messages.append(response.to_message())
            calls = response.tool_calls
            if not calls:
                break
            results = []
            for c in calls:
                args = c.arguments if isinstance(c.arguments, dict) else json.loads(c.arguments)
                results.append(ToolResultPart(c.id, c.name, tools[c.name](**args)))
            messages.append(Message("tool", results))
        return {"output": response.text, "messages": messages, "usage": usage}

    return floor_arun


def parts_vivace(n: int = 4000, repeat: int = 7) -> str:
    """Where a two-step ``arun`` goes, through the public API: CPU time per call (best of
    ``repeat`` batches of ``n``, ``time.process_time``), as text."""
    import gc

    from vivace import Agent

    model = weather_model()
    agent = Agent(model=model, tools=[get_weather])

    def best(fn: Callable[[], Any]) -> float:
        out = []
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(n):
                fn()
            out.append((time.process_time() - t0) / n)
        return min(out)

    async def abest(fn: Callable[[], Awaitable[Any]]) -> float:
        out = []
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(n):
                await fn()
            out.append((time.process_time() - t0) / n)
        return min(out)

    async def streamed() -> None:
        async for _ in agent.astream(PROMPT, stream_model=False):
            pass

    async def empty() -> None:
        pass

    async def agen() -> AsyncIterator[None]:
        if False:
            yield

    async def one_agen() -> None:
        async for _ in agen():
            pass

    from vivace.models import ModelRequest
    from vivace.tools.tool import as_tool

    defs = [as_tool(get_weather).definition()]

    async def model_only() -> None:  # the model's two answers, as the floor asks them
        from vivace.messages import Message, ToolResultPart

        messages = [Message.user(PROMPT)]
        first = await model.request(ModelRequest(messages, tools=defs))
        messages += [
            first.to_message(),
            Message("tool", [ToolResultPart("call_1", "get_weather", "x")]),
        ]
        await model.request(ModelRequest(messages, tools=defs))

    objects_run = _objects_run(agent, model)
    floor_run = _floor_run(model)
    res: dict[str, float] = {}

    async def async_part() -> None:
        for _ in range(300):
            await agent.arun(PROMPT)
            await streamed()
            await objects_run()
            await floor_run()
        res["arun"] = await abest(lambda: agent.arun(PROMPT))
        res["objects"] = await abest(objects_run)
        res["floor"] = await abest(floor_run)
        res["astream"] = await abest(streamed)
        res["model"] = await abest(model_only)
        res["agen"] = await abest(one_agen)
        res["coro"] = await abest(empty)
        before = sum(g["collections"] for g in gc.get_stats())
        for _ in range(10_000):
            await agent.arun(PROMPT)
        res["collections"] = sum(g["collections"] for g in gc.get_stats()) - before

    asyncio.run(async_part())
    loop = asyncio.new_event_loop()

    def one_pass() -> None:
        task = loop.create_task(empty())
        loop.stop()
        loop.run_forever()
        task.result()

    res["run"] = best(lambda: agent.run(PROMPT))
    res["one_pass"] = best(one_pass)
    res["run_until_complete"] = best(lambda: loop.run_until_complete(empty()))
    loop.close()
    us = {k: v * 1e6 for k, v in res.items() if k != "collections"}
    lines = [
        f"-- where a two-step run goes (Vivace, CPU time, best of {repeat} x {n} calls)",
        f"arun() (the plain path: no events built)          {us['arun']:8.2f} us",
        f"astream(stream_model=False) drained (9 events)    {us['astream']:8.2f} us"
        f"   -> building and handing out the events: {us['astream'] - us['arun']:.2f} us",
        f"the model alone (FunctionModel, two answers)      {us['model']:8.2f} us"
        f"   -> Vivace's own work in arun(): {us['arun'] - us['model']:.2f} us",
        f"the same run hand-written, with a run's objects   {us['objects']:8.2f} us"
        f"   -> the loop's own code around them: {us['arun'] - us['objects']:.2f} us",
        f"the run-loop floor (hand-written, no framework)   {us['floor']:8.2f} us"
        f"   -> arun() / floor: {us['arun'] / us['floor']:.2f}x,"
        f" with a run's objects / floor: {us['objects'] / us['floor']:.2f}x",
        f"run() (sync)                                      {us['run']:8.2f} us"
        f"   -> run() - arun(): {us['run'] - us['arun']:.2f} us",
        f"empty coroutine, one loop pass (run()'s driver)   {us['one_pass']:8.2f} us",
        f"empty coroutine, run_until_complete               {us['run_until_complete']:8.2f} us",
        f"async generator created and exhausted             {us['agen']:8.2f} us"
        f"   (a coroutine: {us['coro']:.2f} us)",
        f"garbage collections during 10,000 arun() calls    {res['collections']:8.0f}",
    ]
    return "\n".join(lines)


def _objects_run(agent: Any, model: Any) -> Callable[[], Awaitable[Any]]:
    """The two-step run hand-written with the objects every Vivace run makes, and no loop
    around them: a run id, the session state, the ``RunContext`` and the tool call's copy of
    it, the live-run registry entry that ``cancel(run_id)`` finds, pydantic validation of the
    arguments, the tool called as Vivace calls it (context set for child runs), usage sums and
    the ``RunResult``. What Vivace's ``arun()`` costs beyond it is its loop's own code: the
    options, the steps, retries and approvals checked, the events counted."""
    from vivace.agent.loop import tool_plan
    from vivace.agent.registry import RunHandle, register_run, unregister_run
    from vivace.agent.result import RunResult
    from vivace.identifiers import new_id
    from vivace.messages import Message, TextPart, ToolResultPart
    from vivace.models import ModelRequest, Usage
    from vivace.storage.state import SessionState
    from vivace.tools.context import _CURRENT, RunContext
    from vivace.tools.tool import result_to_content

    plan = tool_plan(agent)
    assert plan is not None
    tools, defs = plan[1], plan[2]

    async def run() -> Any:
        run_id = new_id()
        history = [Message("user", [TextPart(PROMPT)])]
        state = SessionState.loaded({}, {})
        usage = Usage()
        ctx: RunContext[Any] = RunContext(
            run_id, None, None, state, None, None, history, 0, None, 0, {}, run_id,
            run_id[16:], None, agent, usage,
        )  # fmt: skip
        handle = RunHandle()
        register_run(run_id, handle)
        try:
            while True:
                response = await model.request(ModelRequest(history, None, defs, None, None))
                u = response.usage
                u.requests, u.tool_calls = 1, 0
                usage += u
                history.append(Message("assistant", response.parts))
                calls = response.tool_calls
                if not calls:
                    break
                results = []
                for c in calls:
                    t = tools[c.name]
                    call_ctx = ctx.for_tool_call(c.id, 0)
                    args = t.validate(c.arguments)
                    token = _CURRENT.set(call_ctx)
                    try:
                        raw = await t.call(args, call_ctx)
                    finally:
                        _CURRENT.reset(token)
                    results.append(ToolResultPart(c.id, c.name, result_to_content(raw)))
                history.append(Message("tool", results))
        finally:
            unregister_run(run_id, handle)
        return RunResult(
            run_id, "completed", response.text, history[:], usage, None, None, None, None,
            state, run_id, run_id[16:], None,
        )  # fmt: skip

    return run


def profile_vivace(n: int = 3000, top: int = 25) -> str:
    """cProfile of Vivace's ``arun`` and ``run`` (``n`` runs each): the top functions by own
    time, as text."""
    import cProfile
    import io
    import pstats

    from vivace import Agent

    agent = Agent(model=weather_model(), tools=[get_weather])
    agent.run(PROMPT)
    out = io.StringIO()

    async def many() -> None:
        for _ in range(n):
            await agent.arun(PROMPT)

    for name, fn in (
        ("arun", lambda: asyncio.run(many())),
        ("run", lambda: [agent.run(PROMPT) for _ in range(n)]),
    ):
        pr = cProfile.Profile()
        pr.enable()
        fn()
        pr.disable()
        out.write(f"\n-- Vivace {name}(): cProfile of {n} runs, top {top} by own time\n")
        st = pstats.Stats(pr, stream=out)
        st.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- Agno --------------------------------------------------------------------------------------


def _agno_scripted_model() -> Any:
    """An in-process Agno Model: a tool call, then the answer once the tool result is in.

    It fills Agno's ModelResponse the way Agno's OpenAI adapter does after parsing
    (role, content or OpenAI-shaped tool_calls, usage metrics) and does no other work.
    """

    from agno.metrics import MessageMetrics
    from agno.models.base import Model
    from agno.models.response import ModelResponse

    @dataclass
    class ScriptedAgnoModel(Model):
        id: str = "scripted"
        name: str = "Scripted"
        provider: str = "test"

        def _answer(self, messages: list[Any]) -> ModelResponse:
            r = ModelResponse(role="assistant")
            if messages[-1].role == "tool":
                r.content = ANSWER
            else:
                r.tool_calls = [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ]
            r.response_usage = MessageMetrics(input_tokens=10, output_tokens=5, total_tokens=15)
            return r

        def invoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer(messages)

        async def ainvoke(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            return self._answer(messages)

        def invoke_stream(self, messages: list[Any], assistant_message: Any, **kw: Any) -> Any:
            yield self._answer(messages)

        async def ainvoke_stream(
            self, messages: list[Any], assistant_message: Any, **kw: Any
        ) -> Any:
            yield self._answer(messages)

        def _parse_provider_response(self, response: Any, **kw: Any) -> Any:
            return response

        def _parse_provider_response_delta(self, response: Any) -> Any:
            return response

    return ScriptedAgnoModel()


def worker_agno(s: Sizes) -> dict[str, Any]:
    """All in-process measurements for Agno (same shapes as :func:`worker_vivace`)."""
    os.environ["AGNO_TELEMETRY"] = "false"  # no network calls from the runs
    import agno
    from agno.agent import Agent
    from agno.models.openai import OpenAIChat
    from agno.tools.function import Function

    res: dict[str, Any] = {}

    def make_tools() -> Any:
        return Agent(model=OpenAIChat(id="gpt-4o"), tools=[get_weather])

    def make_bare() -> Any:
        return Agent()

    for key, make in (("tools", make_tools), ("bare", make_bare)):
        res[f"construct_{key}"] = time_per_call(
            make, number=s.construct_number // 4, repeat=s.construct_repeat, warmup=200
        )[0]
        res[f"kept_{key}"] = kept_bytes_per_object(make, s.kept_n)
        res[f"peak_{key}"] = peak_bytes_per_call(make, samples=s.peak_samples)

    # What Agno's run does per plain-function tool (agno/agent/_tools.py): from_callable,
    # which derives the schema once per function object and returns a per-run copy.
    res["schema_first"] = _first_build(lambda f: Function.from_callable(f), s)
    res["schema_cached"] = time_per_call(
        lambda: Function.from_callable(get_weather),
        number=s.schema_cached_number // 10,
        repeat=s.schema_cached_repeat,
        warmup=10,
    )[0]

    model = _agno_scripted_model()
    agent = Agent(model=model, tools=[get_weather], telemetry=False)
    first = agent.run(PROMPT)
    if first.content != ANSWER or len(first.tools or []) != 1:
        raise SystemExit(f"unexpected Agno result: {first!r}")

    async def arun() -> Any:
        return await agent.arun(PROMPT)

    def run() -> Any:
        return agent.run(PROMPT)

    async def fresh() -> Any:
        return await Agent(model=model, tools=[get_weather], telemetry=False).arun(PROMPT)

    async_agent = Agent(model=model, tools=[_get_weather_async], telemetry=False)

    async def arun_async_tool() -> Any:
        return await async_agent.arun(PROMPT)

    res.update(_runs(arun, run, fresh, arun_async_tool, s))
    res["version"] = agno.__version__ if hasattr(agno, "__version__") else _dist_version("agno")
    return res


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# -- import time (fresh processes) ----------------------------------------------------------


def _importtime_top(stmt: str, top: int = 8) -> list[tuple[str, int, int]]:
    """``-X importtime`` of ``stmt``: the ``top`` modules by cumulative microseconds, as
    ``(name, self_us, cumulative_us)`` (nested imports are included in their parent)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", stmt],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.removeprefix("import time:").split("|")
        rows.append((name.rstrip(), int(self_us), int(cum_us)))
    rows.sort(key=lambda r: -r[2])
    return rows[:top]


def measure_imports(s: Sizes) -> dict[str, Any]:
    env_agno = "import os; os.environ['AGNO_TELEMETRY'] = 'false'\n"
    out: dict[str, Any] = {}
    for key, code in (
        ("vivace_import", "import vivace"),
        ("vivace_from_import", "from vivace import Agent"),
        ("agno_import", env_agno + "from agno.agent import Agent"),
    ):
        inner, outer = fresh_process_times(code, runs=s.import_runs)
        out[key] = statistics.median(inner)
        out[key + "_process"] = statistics.median(outer)
    for key, code in (
        ("vivace_modules", "from vivace import Agent"),
        ("agno_modules", "from agno.agent import Agent"),
    ):
        out[key] = int(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import sys; n = len(sys.modules); {code}; print(len(sys.modules) - n)",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    out["vivace_importtime"] = _importtime_top("from vivace import Agent")
    return out


# -- driver ------------------------------------------------------------------------------------


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each numeric figure over the rounds (other values from the first round)."""
    out = dict(results[0])
    for key, value in out.items():
        if isinstance(value, float | int):
            out[key] = statistics.median(r[key] for r in results)
    return out


def build_rows(v: dict[str, Any], a: dict[str, Any], imp: dict[str, Any]) -> list[Row]:
    return [
        Row("(a) construct Agent(model, tools=[get_weather])", v["construct_tools"], a["construct_tools"], "time", 10),
        Row("(a) construct bare Agent()", v["construct_bare"], a["construct_bare"], "time", 10),
        Row("(a) memory kept per agent, with tool", v["kept_tools"], a["kept_tools"], "bytes", 10),
        Row("(a) memory kept per agent, bare", v["kept_bare"], a["kept_bare"], "bytes", 10),
        Row("(a) peak per construction (Agno method), with tool", v["peak_tools"], a["peak_tools"], "bytes"),
        Row("(a) peak per construction (Agno method), bare", v["peak_bare"], a["peak_bare"], "bytes"),
        Row("(b) from vivace import Agent / from agno.agent import Agent", imp["vivace_from_import"], imp["agno_import"], "time", 8),
        Row("(b) import vivace / from agno.agent import Agent", imp["vivace_import"], imp["agno_import"], "time"),
        Row("(b) same, whole fresh process (incl. interpreter start)", imp["vivace_from_import_process"], imp["agno_import_process"], "time"),
        Row("(c) tool schema, first build (new function)", v["schema_first"], a["schema_first"], "time"),
        Row("(c) tool schema, cached (same function)", v["schema_cached"], a["schema_cached"], "time"),
        Row("(d) two-step run: await agent.arun()", v["arun"], a["arun"], "time", 5),
        Row("(d) two-step run: agent.run() (sync)", v["run"], a["run"], "time", 5),
        Row("(d) fresh agent per request + arun()", v["arun_fresh_agent"], a["arun_fresh_agent"], "time"),
        Row("(d) arun() with the tool as async def (no thread hop)", v["arun_async_tool"], a["arun_async_tool"], "time"),
    ]  # fmt: skip


def build_floor_rows(v: dict[str, Any], f: dict[str, Any]) -> list[Row]:
    return [
        FloorRow("two-step run: await agent.arun()", v["arun"], f["arun"], "time", 1.5),
        FloorRow("two-step run: agent.run() (sync)", v["run"], f["run"], "time", 2.0),
        FloorRow("arun vs the bare floor (plain dicts, plain model)", v["arun"], f["arun_bare"], "time"),
        FloorRow("run vs the bare floor (plain dicts, plain model)", v["run"], f["run_bare"], "time"),
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer iterations (noisier)")
    p.add_argument(
        "--rounds",
        type=int,
        help="alternating Vivace/Agno worker rounds; each figure is the median over rounds "
        "(default 3, 1 with --quick)",
    )
    p.add_argument("--json", metavar="PATH", help="also write all figures as JSON")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    p.add_argument(
        "--no-venv",
        action="store_true",
        help="run in this interpreter (agno must be installed) instead of .bench-venv",
    )
    p.add_argument(
        "--profile", action="store_true", help="also print a cProfile of Vivace's arun and run"
    )
    p.add_argument(
        "--parts",
        action="store_true",
        help="also print where a run's time goes (events, model, driver; public API only)",
    )
    p.add_argument(
        "--worker", choices=["vivace", "agno", "floor", "profile", "parts"], help=argparse.SUPPRESS
    )
    args = p.parse_args()
    s = Sizes(args.quick)

    if args.worker:
        sys.path.insert(0, str(REPO_ROOT))
        if args.worker in ("profile", "parts"):
            text = profile_vivace() if args.worker == "profile" else parts_vivace()
            print(json.dumps({"text": text}))
            return
        fn = {"vivace": worker_vivace, "agno": worker_agno, "floor": worker_floor}[args.worker]
        print(json.dumps(fn(s)))
        return

    if not args.no_venv:
        reexec_in_venv(AGNO_REQUIREMENTS)
    if not in_venv():  # --no-venv: make the repo importable in the child processes too
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)
    print(f"bench_agent: {machine_note()}; venv={'.bench-venv' if in_venv() else sys.prefix}")
    print("measuring imports in fresh processes...", flush=True)
    imp = measure_imports(s)
    extra = ["--quick"] if args.quick else []
    rounds = args.rounds or (1 if args.quick else 3)
    vs: list[dict[str, Any]] = []
    as_: list[dict[str, Any]] = []
    fs: list[dict[str, Any]] = []
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}: Vivace, Agno, the floor (each in its own process)...",
              flush=True)  # fmt: skip
        vs.append(run_worker(__file__, "vivace", extra))
        as_.append(run_worker(__file__, "agno", extra))
        fs.append(run_worker(__file__, "floor", extra))
    v, a, f = _merge(vs), _merge(as_), _merge(fs)

    print(f"\nVivace {v['version']} vs Agno {a['version']}  (ratio = Agno / Vivace)\n")
    rows = build_rows(v, a, imp)
    print_table(rows, "Agno")
    modules = f"{imp['vivace_modules']} vs {imp['agno_modules']}"
    print(f"\nmodules loaded by the import (Vivace vs Agno): {modules}")
    print("-X importtime, `from vivace import Agent`, top by cumulative us (self, cumulative):")
    for name, self_us, cum_us in imp["vivace_importtime"]:
        print(f"  {cum_us:>7} {self_us:>7}  {name}")
    print("\nVivace vs the run-loop floor (a hand-written two-step run, no framework; "
          "ratio = Vivace / floor)\n")  # fmt: skip
    floor_rows = build_floor_rows(v, f)
    print_table(floor_rows, "floor")
    if args.profile:
        print(run_worker(__file__, "profile", [])["text"])
    if args.parts:
        print(run_worker(__file__, "parts", [])["text"])
    targets = [r for r in rows + floor_rows if r.target is not None]
    missed = [r for r in targets if r.status == "MISS"]
    print(f"\ntargets: {len(targets) - len(missed)}/{len(targets)} PASS")
    for r in missed:
        print(f"  MISS: {r.label}: {r.ratio:.1f}x (target {r.target:g}x)")
    if args.markdown:
        print()
        print_table(rows, f"Agno {a['version']}", markdown=True)
        print()
        print_table(floor_rows, "floor", markdown=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine_note(),
                    "quick": args.quick,
                    "rounds": rounds,
                    "vivace": v,
                    "agno": a,
                    "vivace_rounds": vs,
                    "agno_rounds": as_,
                    "floor": f,
                    "floor_rounds": fs,
                    "floor_rows": [r.to_dict() for r in floor_rows],
                    "imports": imp,
                    "rows": [r.to_dict() for r in rows],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
