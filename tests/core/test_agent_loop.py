"""The run loop through the public API, with deterministic test models."""

import asyncio
import json
import threading
import time

import pytest
from pydantic import BaseModel

from vivace import Agent, ModelResponse, ModelRetry, RunContext, TextPart, tool
from vivace.agent.events import EVENT_TYPES, event_from_dict
from vivace.errors import (
    MaxStepsExceeded,
    ModelRefusal,
    OutputTypeError,
    OutputValidationError,
    ToolRetriesExceeded,
    UnexpectedModelBehavior,
)
from vivace.messages import ToolCallPart
from vivace.testing import FunctionModel, ScriptedModel, Stream, call, reasoning


def get_weather(city: str) -> str:
    """Current weather.

    Args:
        city: City name.
    """
    return f"Sunny in {city}"


async def test_text_answer_and_result_fields():
    agent = Agent(model=ScriptedModel(["Hello!"]), instructions="Be nice.")
    result = await agent.arun("hi", session_id="s1", user_id="u1")
    assert result.status == "completed"
    assert result.output == "Hello!"
    assert result.session_id == "s1"
    assert result.run_id
    assert [m.role for m in result.messages] == ["user", "assistant"]
    assert result.usage.requests == 1 and result.usage.input_tokens > 0


async def test_tool_call_then_answer_and_instructions_reach_model():
    model = ScriptedModel([call("get_weather", {"city": "Paris"}), "It is sunny."])
    agent = Agent(model=model, instructions="Answer briefly.", tools=[get_weather])
    result = await agent.arun("Weather in Paris?")
    assert result.output == "It is sunny."
    assert result.usage.tool_calls == 1 and result.usage.requests == 2
    tool_msg = result.messages[2]
    assert tool_msg.role == "tool"
    assert tool_msg.tool_results[0].content == "Sunny in Paris"
    first = model.requests[0]
    assert first.instructions == "Answer briefly."
    assert first.tools[0].name == "get_weather"
    assert first.tools[0].parameters["properties"]["city"]["description"] == "City name."


def test_sync_run_and_sync_stream():
    agent = Agent(
        model=ScriptedModel([call("get_weather", {"city": "Oslo"}), "Cold."]), tools=[get_weather]
    )
    assert agent.run("x").output == "Cold."
    agent.model.reset()
    stream = agent.stream("x")
    types = [e.type for e in stream]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert stream.result is not None and stream.result.output == "Cold."


def test_sync_run_that_waits_or_fails_or_nests():
    """``run()`` first gives the run one pass of the loop; a run still waiting then (an async
    tool that sleeps) is finished on the same loop, a failure raises as itself, and the loop
    is kept for the next call."""
    import asyncio

    async def slow(city: str) -> str:
        """Slow weather."""
        await asyncio.sleep(0.02)
        return f"Rain in {city}"

    agent = Agent(model=ScriptedModel([call("slow", {"city": "Oslo"}), "Wet."]), tools=[slow])
    result = agent.run("x")
    assert result.output == "Wet." and result.messages[-2].tool_results[0].content == "Rain in Oslo"

    def boom(messages, request):
        raise KeyError("no model here")

    failed = Agent(model=FunctionModel(boom)).run("x")
    assert failed.status == "failed" and "no model here" in failed.error.message
    with pytest.raises(TypeError):  # raised in the task's first step, before the run starts
        Agent(model=FunctionModel(boom)).run("x", message_history=5)  # type: ignore[arg-type]
    # the kept loop serves the next call, and is not left running
    agent.model.reset()
    assert agent.run("x").output == "Wet."
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


async def test_event_stream_shape_and_json():
    model = ScriptedModel(
        [
            Stream(reasoning("hmm"), call("get_weather", {"city": "Rome"})),
            Stream("Sun", "ny ", "in Rome."),
        ]
    )
    agent = Agent(model=model, tools=[get_weather], name="weather")
    stream = agent.astream("Rome?")
    events = [e async for e in stream]
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.run_id for e in events}) == 1
    types = [e.type for e in events]
    assert types == [
        "run_started",
        "model_request_started",
        "reasoning_delta",
        "model_request_completed",
        "tool_call_started",
        "tool_call_completed",
        "model_request_started",
        "text_delta",
        "text_delta",
        "text_delta",
        "model_request_completed",
        "run_completed",
    ]
    assert set(types) <= set(EVENT_TYPES)
    for e in events:
        d = json.loads(json.dumps(e.to_dict()))
        assert event_from_dict(d) == e
    started = events[4]
    assert started.name == "get_weather" and started.arguments == {"city": "Rome"}
    assert events[5].result == "Sunny in Rome"
    assert "".join(e.text for e in events if e.type == "text_delta") == "Sunny in Rome."
    assert stream.result.output == "Sunny in Rome."
    assert events[-1].usage["tool_calls"] == 1


async def test_parallel_tool_calls_run_concurrently():
    running = 0
    peak = 0

    async def slow(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return n * 2

    model = ScriptedModel([[call("slow", {"n": i}) for i in range(4)], "done"])
    agent = Agent(model=model, tools=[slow], tool_concurrency=2)
    result = await agent.arun("go")
    assert result.output == "done"
    assert peak == 2
    results = result.messages[2].tool_results
    assert [r.content for r in results] == [0, 2, 4, 6]  # original call order


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_that_fails_the_run_cancels_the_calls_still_running(streamed):
    """Nothing of a failed run outlives it: a sibling call still running when another call
    spends its retry budget is cancelled, and the run ends once it has settled."""
    log: list[str] = []

    async def slow(n: int) -> str:
        log.append("slow started")
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            log.append("slow cancelled")
            raise
        log.append("slow finished")
        return "late"

    @tool(threaded=False)  # fails at once, whatever the machine's load
    def broken(n: int) -> str:
        raise RuntimeError("boom 💥")

    model = ScriptedModel([[call("slow", {"n": 1}), call("broken", {"n": 2})], "never"])
    agent = Agent(model=model, tools=[slow, broken], tool_retries=0)
    if streamed:
        stream = agent.astream("go")
        events = [e async for e in stream]
        result = stream.result
        assert events[-1].type == "run_failed"
    else:
        result = await agent.arun("go")
    assert result.status == "failed" and isinstance(result.error, ToolRetriesExceeded)
    assert result.error.details == {"tool": "broken"}
    assert log == ["slow started", "slow cancelled"]  # settled before the run ended
    await asyncio.sleep(0.4)
    assert log == ["slow started", "slow cancelled"]  # and never finished afterwards


async def test_sync_tools_run_off_the_event_loop():
    loop_thread = threading.get_ident()
    seen = []

    def blocking(x: int) -> int:
        seen.append(threading.get_ident())
        time.sleep(0.01)
        return x

    agent = Agent(model=ScriptedModel([call("blocking", {"x": 1}), "ok"]), tools=[blocking])
    await agent.arun("go")
    assert seen and seen[0] != loop_thread


async def test_run_context_injection_and_deps():
    captured = {}

    def remember(ctx: RunContext[dict], key: str, value: str) -> str:
        captured["ctx"] = ctx
        ctx.session_state[key] = value
        return f"{ctx.deps['prefix']}{value}"

    state: dict = {}
    model = ScriptedModel([call("remember", {"key": "color", "value": "blue"}), "saved"])
    agent = Agent(model=model, tools=[remember], deps={"prefix": "#"})
    result = await agent.arun("x", session_id="s", user_id="u", session_state=state, run_id="run-1")
    ctx = captured["ctx"]
    assert (ctx.run_id, ctx.session_id, ctx.user_id) == ("run-1", "s", "u")
    assert ctx.tool_call_id == result.messages[1].tool_calls[0].id
    # the run works on its own copy (a SessionState); the result has the final state
    assert state == {} and result.session_state == {"color": "blue"}
    assert result.messages[2].tool_results[0].content == "#blue"
    assert "ctx" not in model.requests[0].tools[0].parameters["properties"]
    # per-run deps override the agent's
    model.reset()
    result = await agent.arun("x", deps={"prefix": "!"})
    assert result.messages[2].tool_results[0].content == "!blue"


async def test_callable_instructions_get_context():
    async def instructions(ctx: RunContext) -> str:
        return f"user is {ctx.user_id}"

    model = ScriptedModel(["ok"])
    await Agent(model=model, instructions=instructions).arun("x", user_id="ann")
    assert model.requests[0].instructions == "user is ann"


async def test_bad_arguments_go_back_to_model_then_succeed():
    model = ScriptedModel(
        [
            call("get_weather", "{not json"),
            call("get_weather", {"town": "Paris"}),
            call("get_weather", {"city": "Paris"}),
            "done",
        ]
    )
    agent = Agent(model=model, tools=[get_weather], tool_retries=2)
    result = await agent.arun("x")
    assert result.output == "done"
    errors = [m.tool_results[0] for m in result.messages if m.role == "tool"]
    assert errors[0].is_error and "Invalid JSON" in errors[0].content
    assert errors[1].is_error and "city: Field required" in errors[1].content
    assert not errors[2].is_error
    # the model saw the validation details
    assert "city: Field required" in json.dumps([m.to_dict() for m in model.requests[2].messages])


async def test_tool_exceptions_and_retry_budget():
    def flaky() -> str:
        raise RuntimeError("database down")

    model = ScriptedModel([call("flaky"), call("flaky"), call("flaky"), "never"])
    agent = Agent(model=model, tools=[flaky], tool_retries=2)
    result = await agent.arun("x")
    assert result.status == "failed"
    assert isinstance(result.error, ToolRetriesExceeded)
    assert "database down" in result.error.message
    with pytest.raises(ToolRetriesExceeded):
        _ = result.output
    first_error = result.messages[2].tool_results[0]
    assert first_error.is_error and first_error.content == "RuntimeError: database down"


async def test_model_retry_from_tool():
    def pick(n: int) -> int:
        if n < 0:
            raise ModelRetry("n must be positive, try again")
        return n

    model = ScriptedModel([call("pick", {"n": -1}), call("pick", {"n": 3}), "3"])
    result = await Agent(model=model, tools=[pick]).arun("x")
    assert result.output == "3"
    assert result.messages[2].tool_results[0].content == "n must be positive, try again"


async def test_tool_timeout_is_reported_to_model():
    @tool(timeout=0.05)
    async def sleepy() -> str:
        await asyncio.sleep(5)
        return "late"

    model = ScriptedModel([call("sleepy"), "gave up"])
    result = await Agent(model=model, tools=[sleepy]).arun("x")
    assert result.output == "gave up"
    res = result.messages[2].tool_results[0]
    assert res.is_error and "timed out" in res.content


async def test_unknown_tool_is_handled_in_loop():
    model = ScriptedModel([call("nope", {}), "recovered"])
    result = await Agent(model=model, tools=[get_weather]).arun("x")
    assert result.output == "recovered"
    res = result.messages[2].tool_results[0]
    assert res.is_error and "unknown tool 'nope'" in res.content and "get_weather" in res.content


async def test_empty_response_retries_then_fails():
    empty = ModelResponse(parts=[])
    result = await Agent(model=ScriptedModel([empty, "fine"])).arun("x")
    assert result.output == "fine"
    result = await Agent(model=ScriptedModel([empty, empty, empty]), output_retries=2).arun("x")
    assert result.status == "failed" and isinstance(result.error, UnexpectedModelBehavior)


async def test_refusal_ends_run_with_typed_error():
    refusal = ModelResponse(parts=[TextPart("I can't help")], refusal="I can't help with that")
    result = await Agent(model=ScriptedModel([refusal])).arun("x")
    assert result.status == "failed" and isinstance(result.error, ModelRefusal)
    filtered = ModelResponse(parts=[TextPart("")], finish_reason="content_filter")
    result = await Agent(model=ScriptedModel([filtered])).arun("x")
    assert isinstance(result.error, ModelRefusal)


async def test_model_exception_becomes_failed_run():
    from vivace.errors import ModelHTTPError

    model = ScriptedModel([ModelHTTPError("overloaded", provider="x", status=529)])
    stream = Agent(model=model).astream("x")
    events = [e async for e in stream]
    assert events[-1].type == "run_failed"
    assert events[-1].error["type"] == "ModelHTTPError"
    assert stream.result.status == "failed"


async def test_max_steps():
    model = ScriptedModel([call("get_weather", {"city": "a"})] * 5)
    result = await Agent(model=model, tools=[get_weather], max_steps=3).arun("x")
    assert result.status == "failed" and isinstance(result.error, MaxStepsExceeded)
    assert result.usage.requests == 3


async def test_stop_after_tool_result_is_output():
    @tool(stop_after=True)
    def final_answer(value: int) -> dict:
        return {"value": value}

    model = ScriptedModel([call("final_answer", {"value": 7}), "never used"])
    result = await Agent(model=model, tools=[final_answer]).arun("x")
    assert result.output == {"value": 7} and result.usage.requests == 1


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_native_with_retry():
    model = ScriptedModel(
        ['{"name": "Paris"}', '```json\n{"name": "Paris", "population": 2100000}\n```']
    )
    result = await Agent(model=model, output_type=City).arun("x")
    assert result.output == City(name="Paris", population=2100000)
    spec = model.requests[0].output
    assert spec.mode == "native" and spec.schema["required"] == ["name", "population"]
    assert "population: Field required" in model.requests[1].messages[-1].text


async def test_structured_output_tool_mode_and_non_object_types():
    model = ScriptedModel(
        [
            call("final_result", {"name": "Rome"}),
            call("final_result", {"name": "Rome", "population": 1}),
        ],
        native_output=False,
    )
    result = await Agent(model=model, output_type=City).arun("x")
    assert result.output == City(name="Rome", population=1)
    assert model.requests[0].output is None
    assert "final_result" in [t.name for t in model.requests[0].tools]

    model = ScriptedModel(['{"result": [1, 2, 3]}'])
    result = await Agent(model=model, output_type=list[int]).arun("x")
    assert result.output == [1, 2, 3]


async def test_structured_output_gives_up_with_typed_error():
    model = ScriptedModel(["nope", "still no", "no"])
    result = await Agent(model=model, output_type=City, output_retries=2).arun("x")
    assert result.status == "failed" and isinstance(result.error, OutputValidationError)


async def test_output_type_that_is_not_a_type():
    result = await Agent(model=ScriptedModel(["x"]), output_type=5).arun("x")
    assert result.status == "failed" and isinstance(result.error, OutputTypeError)
    assert "output_type must be a type" in result.error.message


async def test_function_model_sees_tools_and_messages():
    def brain(messages, request):
        last = messages[-1]
        if last.role == "tool":
            return f"weather says: {last.tool_results[0].content}"
        assert [t.name for t in request.tools] == ["get_weather"]
        return call("get_weather", {"city": "Lima"})

    result = await Agent(model=FunctionModel(brain), tools=[get_weather]).arun("x")
    assert result.output == "weather says: Sunny in Lima"


async def test_multimodal_input_reaches_model():
    from vivace import ImagePart

    model = ScriptedModel(["a cat"])
    img = ImagePart(data=b"\x89PNG", media_type="image/png")
    await Agent(model=model).arun(["what is this?", img])
    assert model.requests[0].messages[0].parts[1] == img


async def test_message_history_is_used_and_not_mutated():
    from vivace import Message

    history = [Message.user("my name is Ann"), Message.assistant("Hi Ann")]
    model = ScriptedModel(["You are Ann"])
    result = await Agent(model=model).arun("who am I?", message_history=history)
    assert len(history) == 2
    assert [m.text for m in model.requests[0].messages][:2] == ["my name is Ann", "Hi Ann"]
    assert [m.role for m in result.messages] == ["user", "assistant"]  # only this run's


async def test_one_agent_serves_concurrent_runs():
    def answer(messages, request):
        return f"echo {messages[-1].text}"

    agent = Agent(model=FunctionModel(answer))
    results = await asyncio.gather(*(agent.arun(f"m{i}") for i in range(50)))
    assert [r.output for r in results] == [f"echo m{i}" for i in range(50)]
    assert len({r.run_id for r in results}) == 50


async def test_no_model_is_a_clear_error():
    result = await Agent().arun("x")
    assert result.status == "failed"
    assert "no model" in result.error.message


async def test_per_run_model_and_settings_override():
    model = ScriptedModel(["ok"])
    agent = Agent(model_settings={"temperature": 0.1, "max_tokens": 5})
    await agent.arun("x", model=model, model_settings={"temperature": 0.9})
    assert model.requests[0].settings == {"temperature": 0.9, "max_tokens": 5}


def test_agent_keeps_no_run_state_and_construction_does_nothing():
    def boom(x: object) -> None:  # would fail if a schema were built at construction
        """Unsupported type."""

    agent = Agent(model="nonexistent/model", tools=[boom], output_type=5)
    assert agent.tools[0] is boom
    assert not hasattr(agent, "__dict__")
    with pytest.raises(AttributeError):
        agent.some_state = 1  # type: ignore[attr-defined]


async def test_bad_tool_definition_fails_run_naming_culprit():
    class Weird:
        pass

    def bad(x: Weird) -> None:
        """Bad."""

    result = await Agent(model=ScriptedModel(["x"]), tools=[bad]).arun("x")
    assert result.status == "failed"
    assert "'bad'" in result.error.message and "'x'" in result.error.message


async def test_tool_call_arguments_as_dict_from_model():
    model = ScriptedModel([[ToolCallPart("c", "get_weather", {"city": "Kyiv"})], "ok"])
    result = await Agent(model=model, tools=[get_weather]).arun("x")
    assert result.messages[2].tool_results[0].content == "Sunny in Kyiv"


async def test_fast_sync_tools_move_onto_the_loop_and_slow_ones_back_off():
    loop_thread = threading.get_ident()
    threads: list[bool] = []
    delay = {"s": 0.0}

    def sometimes_slow(x: int) -> int:
        threads.append(threading.get_ident() == loop_thread)
        time.sleep(delay["s"])
        return x

    t = tool(sometimes_slow)
    turns = []
    for i in range(4):
        turns += [call("sometimes_slow", {"x": i}), "ok"]
    agent = Agent(model=ScriptedModel(turns), tools=[t])
    await agent.arun("1")  # first call: in a thread, timed, fast
    await agent.arun("2")  # now on the loop
    delay["s"] = 0.02
    await agent.arun("3")  # on the loop, but slow: demoted
    await agent.arun("4")  # back in a thread
    assert threads == [False, True, True, False]


async def test_threaded_option_forces_the_choice():
    loop_thread = threading.get_ident()
    seen: list[bool] = []

    @tool(threaded=True)
    def always_thread() -> str:
        seen.append(threading.get_ident() == loop_thread)
        return "t"

    @tool(threaded=False)
    def never_thread() -> str:
        seen.append(threading.get_ident() == loop_thread)
        return "n"

    model = ScriptedModel(
        [call("always_thread"), call("always_thread"), call("never_thread"), "ok"]
    )
    await Agent(model=model, tools=[always_thread, never_thread]).arun("x")
    assert seen == [False, False, True]


async def test_test_provider_strings():
    from vivace.errors import ModelNotFoundError

    result = await Agent(model="test/echo").arun("hello there")
    assert result.output == "echo: hello there"
    result = await Agent(model="test/nope").arun("x")
    assert isinstance(result.error, ModelNotFoundError) and "echo" in result.error.message


async def test_sync_run_inside_a_running_loop_uses_a_helper_thread():
    """``run()`` called where an event loop already runs (a notebook cell, an async test)
    runs the run on its own loop in a helper thread: the result, or the error, comes back."""
    agent = Agent(model=FunctionModel(lambda messages, request: "hi 你好 🎉"))
    assert agent.run("x").output == "hi 你好 🎉"
    with pytest.raises(TypeError):
        agent.run("x", message_history=5)  # type: ignore[arg-type]


async def test_run_ids_are_random_uuid4_hex_and_name_the_trace() -> None:
    import uuid

    agent = Agent(model=FunctionModel(lambda m, r: "ok"))
    ids = [(await agent.arun("hi")).run_id for _ in range(300)]
    stream = agent.astream("hi")
    async for _ in stream:
        pass
    assert stream.result is not None
    ids.append(stream.result.run_id)
    assert len(set(ids)) == len(ids)
    for run_id in ids:
        u = uuid.UUID(run_id)
        assert u.hex == run_id and u.version == 4 and u.variant == uuid.RFC_4122
    result = await agent.arun("hi")
    assert result.trace_id == result.run_id and result.span_id == result.run_id[16:]


async def test_astream_hands_out_each_event_before_the_work_it_announces_finishes() -> None:
    # the model and the tool each wait until the consumer has seen the event announcing them
    model_may_answer = asyncio.Event()
    tool_may_return = asyncio.Event()

    async def script(messages, request):  # type: ignore[no-untyped-def]
        await asyncio.wait_for(model_may_answer.wait(), 5)
        model_may_answer.clear()
        if messages[-1].role == "tool":
            return "done"
        return call("slow", {"x": 1})

    async def slow(x: int) -> str:
        await asyncio.wait_for(tool_may_return.wait(), 5)
        return "slow result"

    agent = Agent(model=FunctionModel(script), tools=[slow])
    seen = []
    async for event in agent.astream("go", stream_model=False):
        seen.append(event.type)
        if event.type == "model_request_started":
            model_may_answer.set()
        elif event.type == "tool_call_started":
            tool_may_return.set()
    assert seen == [
        "run_started",
        "model_request_started",
        "model_request_completed",
        "tool_call_started",
        "tool_call_completed",
        "model_request_started",
        "model_request_completed",
        "text_delta",
        "run_completed",
    ]
