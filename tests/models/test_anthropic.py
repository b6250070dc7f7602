"""Anthropic Messages specifics: wire mapping, empty first input_json_delta, pings, thinking
signatures echoed back, error events, cache usage, native output only where documented."""

from __future__ import annotations

import base64
import json

import pytest

from vivace import Agent
from vivace.errors import ModelConfigError, StreamInterrupted
from vivace.messages import (
    AudioPart,
    FilePart,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolResultPart,
)
from vivace.models import ModelRequest, ModelResponse, OutputSpec, TextDelta, ToolCallDelta
from vivace.models.protocols.anthropic import AnthropicModel, supports_json_outputs
from vivace.models.router import get_model
from vivace.testing.fake_providers import FakeAnthropic, ToolCall, Turn

from .cases import API_KEY
from .test_behaviour import PNG, WEATHER

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"


def model(srv: FakeAnthropic, name: str = "claude-sonnet-4-5", **kw) -> AnthropicModel:
    m = get_model(f"anthropic/{name}", base_url=srv.base_url, api_key=API_KEY, max_retries=0, **kw)
    assert isinstance(m, AnthropicModel)
    return m


async def collect(m, req: ModelRequest) -> tuple[ModelResponse, list]:
    deltas, final = [], None
    async for ev in m.stream(req):
        if isinstance(ev, ModelResponse):
            final = ev
        else:
            deltas.append(ev)
    assert final is not None
    return final, deltas


async def test_request_shape_headers_system_tools_and_media() -> None:
    with FakeAnthropic() as srv:
        srv.script(Turn(text="ok"))
        msg = Message(
            "user",
            [
                TextPart("Look"),
                ImagePart(data=PNG, media_type="image/png"),
                ImagePart(url="https://example.com/cat.jpg"),
                FilePart(data=PDF, media_type="application/pdf", name="doc.pdf"),
            ],
        )
        await model(srv).request(
            ModelRequest(
                [Message("system", [TextPart("Extra rule.")]), msg],
                instructions="Be brief.",
                tools=[WEATHER],
                settings={"temperature": 0.2, "stop": "END", "parallel_tool_calls": False},
            )
        )
        req = srv.requests[0]
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == API_KEY and "authorization" not in req.headers
    assert req.headers["anthropic-version"] == "2023-06-01"
    body = req.json
    assert body["system"] == "Be brief.\n\nExtra rule."
    assert body["max_tokens"] == 8192 and body["temperature"] == 0.2
    assert body["stop_sequences"] == ["END"]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city.",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    [user] = body["messages"]
    kinds = [b["type"] for b in user["content"]]
    assert kinds == ["text", "image", "image", "document"]
    assert user["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(PNG).decode(),
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    assert user["content"][3]["source"]["media_type"] == "application/pdf"


async def test_audio_is_rejected_before_sending() -> None:
    req = ModelRequest([Message("user", [AudioPart(data=b"RIFF", media_type="audio/wav")])])
    with FakeAnthropic() as srv:
        # the model catalog says Claude takes no audio
        with pytest.raises(ModelConfigError, match="does not take audio input"):
            await model(srv).request(req)
        # and without the catalog check, the protocol itself cannot carry it
        with pytest.raises(ModelConfigError, match="AudioPart"):
            await model(srv, check_input=False).request(req)
        assert srv.requests == []


async def test_empty_first_input_json_delta_and_pings_everywhere() -> None:
    turn = Turn(
        text="Let me check.",
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}, id="toolu_1"),
            ToolCall("get_weather", {"city": "Oslo"}, id="toolu_2"),
        ],
        args_chunk_chars=4,
    )
    with FakeAnthropic(ping_every=1) as srv:
        srv.script(turn)
        resp, deltas = await collect(
            model(srv), ModelRequest([Message.user("w?")], tools=[WEATHER])
        )
        sent = b"".join(srv.render_events(turn, srv.requests[0]))
    # what the fake sent: an empty first partial_json per call and a ping after every event
    assert sent.count(b'"partial_json":""') == 2
    assert sent.count(b"event: ping") > 20
    assert [(c.id, c.arguments_dict()) for c in resp.tool_calls] == [
        ("toolu_1", {"city": "Paris"}),
        ("toolu_2", {"city": "Oslo"}),
    ]
    pieces = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert all(d.arguments or d.name for d in pieces)  # the empty delta is not forwarded
    assert {d.index for d in pieces} == {0, 1}
    assert resp.text == "Let me check." and resp.finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_thinking_signature_is_kept_and_echoed(stream: bool) -> None:
    with FakeAnthropic() as srv:
        srv.script(
            Turn(
                reasoning="The user wants weather.",
                tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="toolu_9")],
            ),
            Turn(text="Sunny."),
        )
        m = model(srv)
        req = ModelRequest([Message.user("Weather?")], tools=[WEATHER])
        first = (await collect(m, req))[0] if stream else await m.request(req)
        [reasoning] = [p for p in first.parts if isinstance(p, ReasoningPart)]
        assert reasoning.text == "The user wants weather."
        assert reasoning.signature == FakeAnthropic.signature
        history = [
            Message.user("Weather?"),
            first.to_message(),
            Message("tool", [ToolResultPart("toolu_9", "get_weather", {"temp": 21})]),
            Message.user("Thanks, and tomorrow?"),
        ]
        await m.request(ModelRequest(history, tools=[WEATHER]))
        body = srv.requests[1].json
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "The user wants weather.",
        "signature": FakeAnthropic.signature,
    }
    assert assistant["content"][1]["type"] == "tool_use"
    assert assistant["content"][1]["input"] == {"city": "Paris"}
    # the tool result and the next user text share one user turn, tool result first
    user = body["messages"][2]
    assert [b["type"] for b in user["content"]] == ["tool_result", "text"]
    assert user["content"][0]["tool_use_id"] == "toolu_9"
    assert len(body["messages"]) == 3


async def test_reasoning_from_other_providers_is_not_sent() -> None:
    with FakeAnthropic() as srv:
        srv.script(Turn(text="ok"))
        history = [
            Message.user("hi"),
            Message("assistant", [ReasoningPart("hmm", provider="openai"), TextPart("hello")]),
            Message.user("again"),
        ]
        await model(srv).request(ModelRequest(history))
        assert srv.requests[0].json["messages"][1]["content"] == [{"type": "text", "text": "hello"}]


async def test_error_event_mid_stream_is_typed() -> None:
    with FakeAnthropic() as srv:
        srv.script(Turn(text="a fairly long answer", error_at=5, error_message="Overloaded"))
        seen: list[str] = []
        with pytest.raises(StreamInterrupted) as info:
            async for ev in model(srv).stream(ModelRequest([Message.user("x")])):
                if isinstance(ev, TextDelta):
                    seen.append(ev.text)
    assert seen and "Overloaded" in info.value.message
    assert info.value.to_dict()["details"].get("error_type") == "overloaded_error"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_cache_usage_and_refusal(stream: bool) -> None:
    with FakeAnthropic() as srv:
        srv.script(
            Turn(text="hi", usage={"input_tokens": 1000, "cached_tokens": 900, "output_tokens": 5}),
            Turn(refusal="I can't help with that."),
        )
        m = model(srv)
        req = ModelRequest([Message.user("x")])
        first = (await collect(m, req))[0] if stream else await m.request(req)
        assert (first.usage.input_tokens, first.usage.cached_tokens) == (1000, 900)
        assert first.usage.output_tokens == 5
        refused = (await collect(m, req))[0] if stream else await m.request(req)
    assert refused.refusal == "I can't help with that." and refused.text == ""
    assert refused.finish_reason == "content_filter"


def test_native_output_only_for_documented_models() -> None:
    assert supports_json_outputs("claude-sonnet-4-5")
    assert supports_json_outputs("claude-opus-4-6-20260101")
    assert supports_json_outputs("claude-haiku-4-5@20251001")
    assert not supports_json_outputs("claude-3-5-sonnet-20241022")
    assert not supports_json_outputs("claude-opus-4-20250514")
    assert not supports_json_outputs("claude-opus-4-1")


async def test_agent_uses_final_result_tool_on_older_models() -> None:
    from pydantic import BaseModel

    class Report(BaseModel):
        city: str
        temp: float

    with FakeAnthropic() as srv:
        srv.script(Turn(tool_calls=[ToolCall("final_result", {"city": "Oslo", "temp": 3.5})]))
        agent = Agent(model=model(srv, "claude-3-5-sonnet-20241022"), output_type=Report)
        result = await agent.arun("Report?")
        body = srv.requests[0].json
    assert result.output == Report(city="Oslo", temp=3.5)
    assert "output_config" not in body
    assert [t["name"] for t in body["tools"]] == ["final_result"]


async def test_native_output_request_shape() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    with FakeAnthropic() as srv:
        srv.script(Turn(text=json.dumps({"a": 1})))
        resp = await model(srv).request(
            ModelRequest([Message.user("x")], output=OutputSpec("out", schema))
        )
        body = srv.requests[0].json
    assert json.loads(resp.text) == {"a": 1}
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["output_config"]["format"]["schema"]["additionalProperties"] is False
