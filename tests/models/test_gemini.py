"""Gemini specifics: paths and headers, whole function calls, synthesized ids, thought
signatures echoed, schema adaptation, media parts, safety finish reasons, usage."""

from __future__ import annotations

import json

import pytest

from vivace import Agent
from vivace.messages import FilePart, ImagePart, Message, TextPart, ToolResultPart, VideoPart
from vivace.models import ModelRequest, ModelResponse, OutputSpec, ToolCallDelta, ToolDefinition
from vivace.models.protocols.gemini import GeminiModel, gemini_schema
from vivace.models.router import get_model
from vivace.testing.fake_providers import FakeGemini, Reply, ToolCall, Turn

from .cases import API_KEY
from .test_behaviour import PNG, WEATHER


def model(srv: FakeGemini, **kw) -> GeminiModel:
    m = get_model(
        "google/gemini-2.5-flash", base_url=srv.base_url, api_key=API_KEY, max_retries=0, **kw
    )
    assert isinstance(m, GeminiModel)
    return m


async def ask(m, req: ModelRequest, stream: bool) -> tuple[ModelResponse, list]:
    if not stream:
        return await m.request(req), []
    deltas, final = [], None
    async for ev in m.stream(req):
        if isinstance(ev, ModelResponse):
            final = ev
        else:
            deltas.append(ev)
    assert final is not None
    return final, deltas


both = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@both
async def test_paths_headers_and_request_shape(stream: bool) -> None:
    with FakeGemini() as srv:
        srv.script(Turn(text="ok"))
        await ask(
            model(srv),
            ModelRequest(
                [Message("system", [TextPart("Rule two.")]), Message.user("hi")],
                instructions="Rule one.",
                tools=[WEATHER],
                settings={
                    "max_tokens": 50,
                    "temperature": 0.1,
                    "stop": ["X"],
                    "tool_choice": "required",
                },
            ),
            stream,
        )
        req = srv.requests[0]
    if stream:
        assert req.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        assert req.query == "alt=sse"
    else:
        assert req.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == API_KEY and "authorization" not in req.headers
    body = req.json
    assert body["systemInstruction"] == {"parts": [{"text": "Rule one.\n\nRule two."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert body["generationConfig"] == {
        "temperature": 0.1,
        "maxOutputTokens": 50,
        "stopSequences": ["X"],
    }
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@both
async def test_calls_without_ids_get_stable_ids_and_are_answered_by_name(stream: bool) -> None:
    turn = Turn(
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}),
        ],
        response_id="resp-1",
    )
    with FakeGemini() as srv:
        srv.script(turn, turn, Turn(text="Done."))
        m = model(srv)
        req = ModelRequest([Message.user("w?")], tools=[WEATHER])
        first, deltas = await ask(m, req, stream)
        again, _ = await ask(m, req, stream)
        ids = [c.id for c in first.tool_calls]
        assert len(set(ids)) == 2 and ids == [c.id for c in again.tool_calls]  # stable
        assert [c.arguments_dict()["city"] for c in first.tool_calls] == ["Paris", "Rome"]
        if stream:  # whole calls: one delta per call with the complete arguments
            calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
            assert [json.loads(d.arguments)["city"] for d in calls] == ["Paris", "Rome"]
        history = [
            Message.user("w?"),
            first.to_message(),
            Message(
                "tool",
                [
                    ToolResultPart(ids[0], "get_weather", {"temp": 21}),
                    ToolResultPart(ids[1], "get_weather", "cloudy"),
                ],
            ),
        ]
        resp, _ = await ask(m, ModelRequest(history, tools=[WEATHER]), stream)
        body = srv.requests[2].json
    assert resp.text == "Done."
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn["role"] == "model"
    assert [p["functionCall"] for p in model_turn["parts"]] == [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_weather", "args": {"city": "Rome"}},
    ]  # no invented id goes back to the API
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "cloudy"}}},
        ],
    }


@both
async def test_thought_signature_and_api_ids_are_echoed(stream: bool) -> None:
    with FakeGemini() as srv:
        srv.script(
            Turn(
                reasoning="Need the weather tool.",
                tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="fc_1")],
            ),
            Turn(text="Sunny."),
        )
        m = model(srv)
        first, _ = await ask(m, ModelRequest([Message.user("w?")], tools=[WEATHER]), stream)
        [call] = first.tool_calls
        assert call.id == "fc_1"
        assert call.meta and call.meta["thought_signature"] == FakeGemini.thought_signature
        assert first.reasoning == "Need the weather tool."
        history = [
            Message.user("w?"),
            first.to_message(),
            Message("tool", [ToolResultPart("fc_1", "get_weather", {"temp": 21})]),
        ]
        await ask(m, ModelRequest(history, tools=[WEATHER]), stream)
        body = srv.requests[1].json
    [part] = body["contents"][1]["parts"]  # thought summaries without signature stay home
    assert part == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "fc_1"},
        "thoughtSignature": FakeGemini.thought_signature,
    }
    assert body["contents"][2]["parts"][0]["functionResponse"]["id"] == "fc_1"


def test_schema_adaptation() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "$defs": {
            "Unit": {"type": "string", "enum": ["c", "f"]},
            "Place": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
        "properties": {
            "place": {"$ref": "#/$defs/Place"},
            "note": {"type": ["string", "null"], "examples": ["x"]},
            "kind": {"const": "weather"},
            "alt": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        },
        "required": ["place", "ghost"],
    }
    out = gemini_schema(schema)
    text = json.dumps(out)
    for bad in ("$ref", "$defs", "$schema", "additionalProperties", "examples", "const", "oneOf"):
        assert bad not in text, bad
    props = out["properties"]
    assert props["place"]["properties"]["unit"] == {"type": "string", "enum": ["c", "f"]}
    assert props["note"] == {"type": "string", "nullable": True}
    assert props["kind"] == {"enum": ["weather"], "type": "string"}
    assert props["alt"] == {"type": "integer", "nullable": True}
    assert props["either"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert out["required"] == ["place"]


async def test_tool_schemas_are_adapted_on_the_wire() -> None:
    tool = ToolDefinition(
        "f",
        "F.",
        {
            "type": "object",
            "properties": {"x": {"type": "integer", "exclusiveMinimum": 0}},
            "additionalProperties": False,
        },
    )
    with FakeGemini() as srv:
        srv.script(Turn(text="ok"))
        await model(srv).request(ModelRequest([Message.user("x")], tools=[tool]))
        decl = srv.requests[0].json["tools"][0]["functionDeclarations"][0]
    assert decl["parameters"] == {"type": "object", "properties": {"x": {"type": "integer"}}}


async def test_media_parts() -> None:
    with FakeGemini() as srv:
        srv.script(Turn(text="ok"))
        msg = Message(
            "user",
            [
                TextPart("Describe"),
                ImagePart(data=PNG, media_type="image/png"),
                VideoPart(data=b"\x00\x00\x00\x18ftypmp42", media_type="video/mp4"),
                FilePart(url="gs://bucket/report.pdf", media_type="application/pdf"),
            ],
        )
        await model(srv).request(ModelRequest([msg]))
        parts = srv.requests[0].json["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[2]["inlineData"]["mimeType"] == "video/mp4"
    assert parts[3] == {
        "fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}
    }


@both
async def test_safety_and_blocked_prompts_are_content_filter(stream: bool) -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    with FakeGemini() as srv:
        srv.script(Turn(refusal="no"))
        if stream:
            srv.script(
                Reply(
                    200,
                    {"content-type": "text/event-stream"},
                    chunks=[b"data: " + json.dumps(blocked).encode() + b"\n\n"],
                )
            )
        else:
            srv.script(
                Reply(200, {"content-type": "application/json"}, json.dumps(blocked).encode())
            )
        m = model(srv)
        safety, _ = await ask(m, ModelRequest([Message.user("x")]), stream)
        prompt_blocked, _ = await ask(m, ModelRequest([Message.user("y")]), stream)
    assert (safety.finish_reason, safety.raw_finish_reason, safety.text) == (
        "content_filter",
        "SAFETY",
        "",
    )
    assert prompt_blocked.finish_reason == "content_filter"
    assert prompt_blocked.usage.input_tokens == 9


@both
async def test_native_output_uses_response_json_schema(stream: bool) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    with FakeGemini() as srv:
        srv.script(Turn(text='{"a": 3}'))
        resp, _ = await ask(
            model(srv), ModelRequest([Message.user("x")], output=OutputSpec("o", schema)), stream
        )
        gen = srv.requests[0].json["generationConfig"]
    assert json.loads(resp.text) == {"a": 3}
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseJsonSchema"]["properties"] == {"a": {"type": "integer"}}


async def test_response_schema_option_adapts_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": ["integer", "null"]}},
        "additionalProperties": False,
    }
    with FakeGemini() as srv:
        srv.script(Turn(text='{"a": null}'))
        await model(srv, json_schema_field="responseSchema").request(
            ModelRequest([Message.user("x")], output=OutputSpec("o", schema))
        )
        gen = srv.requests[0].json["generationConfig"]
    assert gen["responseSchema"] == {
        "type": "object",
        "properties": {"a": {"type": "integer", "nullable": True}},
    }


async def test_agent_full_loop_streaming_with_thought_signatures() -> None:
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"Sunny in {city}"

    with FakeGemini() as srv:
        srv.script(
            Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
            Turn(text="It is sunny in Paris."),
        )
        agent = Agent(model=model(srv), tools=[get_weather])
        s = agent.astream("Weather?")
        texts = [e.text async for e in s if getattr(e, "type", "") == "text_delta"]
        body = srv.requests[1].json
    assert s.result is not None and s.result.output == "It is sunny in Paris."
    assert "".join(texts) == "It is sunny in Paris."
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == FakeGemini.thought_signature
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {
        "result": "Sunny in Paris"
    }


async def test_gemini_embeddings_batch() -> None:
    from vivace.models.embeddings import GeminiEmbedder, aembed, resolve_embedder
    from vivace.testing.fake_providers import fake_embedding

    with FakeGemini() as srv:
        e = resolve_embedder("google/gemini-embedding-001", base_url=srv.base_url, api_key=API_KEY)
        assert isinstance(e, GeminiEmbedder)
        texts = [f"text {i}" for i in range(5)]
        vectors = await aembed(texts, e, batch_size=2)
        reqs = [r for r in srv.requests if r.path.endswith(":batchEmbedContents")]
    assert vectors == [fake_embedding(t) for t in texts]
    assert (
        len(reqs) == 3 and reqs[0].path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    )
    assert reqs[0].headers["x-goog-api-key"] == API_KEY
    firsts = sorted(r.json["requests"][0]["content"]["parts"][0]["text"] for r in reqs)
    assert firsts == ["text 0", "text 2", "text 4"]  # batches of 2, sent concurrently
    assert min(reqs, key=lambda r: r.body).json["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "text 0"}]},
    }
