"""The behavioural suite every protocol adapter passes (parametrized in cases.py)."""

from __future__ import annotations

import base64
import json

import pytest

from vivace.messages import AudioPart, ImagePart, Message, TextPart, ToolResultPart
from vivace.models import (
    ModelRequest,
    ModelResponse,
    OutputSpec,
    TextDelta,
    ToolCallDelta,
    ToolDefinition,
)
from vivace.testing.fake_providers import FakeProviderServer, ToolCall, Turn

from .cases import Case, case_param

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = ToolDefinition(
    "get_weather",
    "Weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


async def ask(model, req: ModelRequest, stream: bool) -> tuple[ModelResponse, list]:
    if not stream:
        return await model.request(req), []
    deltas, final = [], None
    async for ev in model.stream(req):
        if isinstance(ev, ModelResponse):
            final = ev
        else:
            deltas.append(ev)
    assert final is not None
    return final, deltas


both = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@case_param
@both
async def test_text(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(Turn(text="Hello from the fake provider, in several pieces."))
    model = case.make_model(srv)
    resp, deltas = await ask(
        model, ModelRequest([Message.user("Hi")], instructions="Be brief."), stream
    )
    assert resp.text == "Hello from the fake provider, in several pieces."
    assert resp.finish_reason == "stop"
    assert resp.provider == case.provider
    if stream:
        texts = [d.text for d in deltas if isinstance(d, TextDelta)]
        assert len(texts) > 3 and "".join(texts) == resp.text
    s = srv.summaries()[0]
    assert (s.model, s.stream, s.system, s.user_texts) == (case.model, stream, "Be brief.", ["Hi"])
    header, value = case.auth_header
    assert srv.requests[0].headers[header] == value


@case_param
async def test_each_request_sends_the_tools_it_lists(case: Case, srv: FakeProviderServer) -> None:
    # tool entries are built once per definition object: a new definition (a toolset that
    # lists its tools per run) is sent as it is, even under a name sent before
    srv.script(Turn(text="one"), Turn(text="two"), Turn(text="three"))
    model = case.make_model(srv)
    clock = ToolDefinition("get_time", "Time in a city.", WEATHER.parameters)
    renamed = ToolDefinition("get_weather", "Weather, described anew.", WEATHER.parameters)
    for tools in ([WEATHER], [clock, WEATHER], [renamed]):
        await model.request(ModelRequest([Message.user("Hi")], tools=tools))
    assert [s.tool_names for s in srv.summaries()] == [
        ["get_weather"],
        ["get_time", "get_weather"],
        ["get_weather"],
    ]
    bodies = [r.body.decode() for r in srv.requests]
    assert "Weather for a city." in bodies[1] and "described anew" not in bodies[1]
    assert "Weather, described anew." in bodies[2] and "Weather for a city." not in bodies[2]


@case_param
@both
async def test_one_tool_call_and_result(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(
        Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_abc123")]),
        Turn(text="Sunny in Paris."),
    )
    model = case.make_model(srv)
    req = ModelRequest([Message.user("Weather in Paris?")], tools=[WEATHER])
    resp, deltas = await ask(model, req, stream)
    assert resp.finish_reason == "tool_calls"
    [call] = resp.tool_calls
    assert (call.id, call.name, call.arguments_dict()) == (
        "call_abc123",
        "get_weather",
        {"city": "Paris"},
    )
    assert resp.usage.tool_calls == 1
    if stream:
        assert any(isinstance(d, ToolCallDelta) for d in deltas)
    history = [
        Message.user("Weather in Paris?"),
        resp.to_message(),
        Message("tool", [ToolResultPart("call_abc123", "get_weather", {"temp": 21})]),
    ]
    resp2, _ = await ask(model, ModelRequest(history, tools=[WEATHER]), stream)
    assert resp2.text == "Sunny in Paris."
    s = srv.summaries()[1]
    assert s.tool_names == ["get_weather"]
    assert s.tool_call_ids == ["call_abc123"]
    assert s.tool_result_ids == ["call_abc123"]


@case_param
@both
@pytest.mark.parametrize("interleave", [False, True], ids=["sequential", "interleaved"])
async def test_two_parallel_tool_calls(
    case: Case, srv: FakeProviderServer, stream: bool, interleave: bool
) -> None:
    srv.script(
        Turn(
            text="Checking both." if not interleave else None,
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
                ToolCall("get_weather", {"city": "Tokyo, Japan"}, id="call_2"),
            ],
            interleave_tool_calls=interleave,
            args_chunk_chars=3,
        )
    )
    model = case.make_model(srv)
    resp, _ = await ask(
        model, ModelRequest([Message.user("Paris and Tokyo?")], tools=[WEATHER]), stream
    )
    calls = resp.tool_calls
    assert [(c.id, c.arguments_dict()["city"]) for c in calls] == [
        ("call_1", "Paris"),
        ("call_2", "Tokyo, Japan"),
    ]
    assert resp.finish_reason == "tool_calls"


@case_param
@both
async def test_structured_output(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number", "default": 0}},
        "required": ["city"],
    }
    srv.script(Turn(text=json.dumps({"city": "Paris", "temp": 21.5})))
    model = case.make_model(srv)
    assert model.supports_native_output == case.native_output
    if not case.native_output:
        return  # the agent's final-result tool covers it (test_agent_e2e)
    resp, _ = await ask(
        model,
        ModelRequest([Message.user("Weather?")], output=OutputSpec("Weather report", schema)),
        stream,
    )
    assert json.loads(resp.text) == {"city": "Paris", "temp": 21.5}
    sent = srv.summaries()[0].output_schema
    assert sent is not None
    # strict mode: every property required, closed object, no defaults
    assert sent["required"] == ["city", "temp"] and sent["additionalProperties"] is False
    assert "default" not in sent["properties"]["temp"]


@case_param
@both
async def test_image_input(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(Turn(text="A single pixel."))
    model = case.make_model(srv)
    msg = Message("user", [TextPart("What is this?"), ImagePart(data=PNG, media_type="image/png")])
    resp, _ = await ask(model, ModelRequest([msg]), stream)
    assert resp.text == "A single pixel."
    s = srv.summaries()[0]
    assert s.images == 1 and s.user_texts == ["What is this?"]
    assert base64.b64encode(PNG).decode() in srv.requests[0].body.decode()


@case_param
@both
async def test_usage(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(
        Turn(
            text="ok",
            reasoning="thinking it over",
            usage={
                "input_tokens": 120,
                "output_tokens": 33,
                "cached_tokens": 100,
                "reasoning_tokens": 20,
            },
        )
    )
    resp, _ = await ask(case.make_model(srv), ModelRequest([Message.user("hi")]), stream)
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens, u.requests) == (
        120,
        33,
        100 if case.reports_cached_tokens else 0,
        20 if case.reports_reasoning_tokens else 0,
        1,
    )
    assert resp.reasoning == "thinking it over"


@case_param
@both
async def test_refusal(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    if not case.supports_refusal:
        pytest.skip(f"{case.id} has no refusal text")
    srv.script(Turn(refusal="I can't help with that."))
    resp, _ = await ask(case.make_model(srv), ModelRequest([Message.user("bad")]), stream)
    assert resp.refusal == "I can't help with that."


@case_param
async def test_unsupported_parts_raise_config_error(case: Case, srv: FakeProviderServer) -> None:
    from vivace.errors import ModelConfigError
    from vivace.messages import VideoPart

    model = case.make_model(srv, check_input=False)  # the protocol's limits, not the catalog's
    if not case.supports_video:
        with pytest.raises(ModelConfigError, match="VideoPart"):
            await model.request(
                ModelRequest([Message("user", [VideoPart(data=b"x", media_type="video/mp4")])])
            )
    audio = Message("user", [AudioPart(data=b"RIFF", media_type="audio/wav")])
    if case.supports_audio:
        srv.script(Turn(text="heard"))
        assert (await model.request(ModelRequest([audio]))).text == "heard"
    else:
        with pytest.raises(ModelConfigError, match="AudioPart"):
            await model.request(ModelRequest([audio]))
    assert len(srv.requests) == (1 if case.supports_audio else 0)  # (video: see above)


@case_param
async def test_concurrent_requests_share_one_model(case: Case, srv: FakeProviderServer) -> None:
    import asyncio

    srv.default = Turn(text="same answer", chunk_chars=2)
    model = case.make_model(srv)

    async def one(i: int) -> str:
        resp, _ = await ask(model, ModelRequest([Message.user(f"q{i}")]), stream=i % 2 == 0)
        return resp.text

    assert await asyncio.gather(*(one(i) for i in range(20))) == ["same answer"] * 20
    assert sorted(s.user_texts[0] for s in srv.summaries()) == sorted(f"q{i}" for i in range(20))


@case_param
async def test_sse_split_at_every_byte_boundary(case: Case) -> None:
    with case.fake(frame_bytes=5) as srv:
        srv.script(
            Turn(text="déjà vu € ünïcödé across frames", tool_calls=[ToolCall("f", {"x": "é"})])
        )
        resp, _ = await ask(case.make_model(srv), ModelRequest([Message.user("x")]), True)
    assert resp.text == "déjà vu € ünïcödé across frames"
    assert resp.tool_calls[0].arguments_dict() == {"x": "é"}
