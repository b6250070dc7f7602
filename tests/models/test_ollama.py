"""Ollama native /api/chat specifics: NDJSON streaming, whole tool calls, `format` schemas,
images, options, think, tool messages, registry wiring and /api/embed."""

from __future__ import annotations

import base64
import json

import pytest

from vivace.errors import ModelConfigError, ModelResponseError, StreamInterrupted
from vivace.messages import ImagePart, Message, ReasoningPart, TextPart, ToolResultPart
from vivace.models import ModelRequest, ModelResponse, OutputSpec, ToolCallDelta
from vivace.models.protocols.ollama import OllamaModel
from vivace.models.router import get_model, resolve_model
from vivace.testing.fake_providers import FakeOllama, Reply, ToolCall, Turn

from .test_behaviour import PNG, WEATHER


def model(srv: FakeOllama) -> OllamaModel:
    m = get_model("ollama/qwen3", base_url=srv.base_url, max_retries=0)
    assert isinstance(m, OllamaModel)
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


def test_registry_points_at_the_native_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    m = resolve_model("ollama/llama3.2")
    assert isinstance(m, OllamaModel)
    assert m.endpoint.base_url == "http://localhost:11434"
    compat = resolve_model("ollama-openai/llama3.2")
    assert compat.endpoint.base_url == "http://localhost:11434/v1"  # type: ignore[attr-defined]


@both
async def test_request_shape(stream: bool) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    with FakeOllama() as srv:
        srv.script(Turn(text='{"a": 1}'))
        await ask(
            model(srv),
            ModelRequest(
                [
                    Message(
                        "user",
                        [TextPart("What is it?"), ImagePart(data=PNG, media_type="image/png")],
                    ),
                    Message("assistant", [ReasoningPart("thinking"), TextPart("A pixel?")]),
                    Message.user("Answer in JSON"),
                ],
                instructions="Be brief.",
                output=OutputSpec("o", schema),
                settings={
                    "max_tokens": 64,
                    "temperature": 0,
                    "stop": "\n\n",
                    "think": "low",
                    "num_ctx": 8192,
                },
            ),
            stream,
        )
        req = srv.requests[0]
    assert req.path == "/api/chat"
    body = req.json
    assert body["stream"] is stream
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1] == {
        "role": "user",
        "content": "What is it?",
        "images": [base64.b64encode(PNG).decode()],
    }
    assert body["messages"][2] == {
        "role": "assistant",
        "content": "A pixel?",
        "thinking": "thinking",
    }
    assert body["format"]["properties"] == {"a": {"type": "integer"}}
    assert body["options"] == {
        "num_predict": 64,
        "temperature": 0,
        "stop": ["\n\n"],
        "num_ctx": 8192,
    }
    assert body["think"] == "low"


@both
async def test_whole_tool_calls_without_ids_and_tool_messages(stream: bool) -> None:
    with FakeOllama() as srv:
        srv.script(
            Turn(
                tool_calls=[
                    ToolCall("get_weather", {"city": "Paris"}),
                    ToolCall("get_weather", {"city": "Rome"}),
                ]
            ),
            Turn(text="Both sunny."),
        )
        m = model(srv)
        first, deltas = await ask(m, ModelRequest([Message.user("w?")], tools=[WEATHER]), stream)
        calls = first.tool_calls
        assert [c.arguments_dict() for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
        assert len({c.id for c in calls}) == 2 and first.finish_reason == "tool_calls"
        if stream:
            whole = [d for d in deltas if isinstance(d, ToolCallDelta)]
            assert [json.loads(d.arguments) for d in whole] == [{"city": "Paris"}, {"city": "Rome"}]
        history = [
            Message.user("w?"),
            first.to_message(),
            Message(
                "tool", [ToolResultPart(c.id, c.name, f"sunny {i}") for i, c in enumerate(calls)]
            ),
        ]
        resp, _ = await ask(m, ModelRequest(history, tools=[WEATHER]), stream)
        body = srv.requests[1].json
    assert resp.text == "Both sunny."
    assistant = body["messages"][1]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": "sunny 0",
        "tool_name": "get_weather",
        "tool_call_id": calls[0].id,
    }


async def test_remote_images_are_rejected() -> None:
    with FakeOllama() as srv:
        with pytest.raises(ModelConfigError, match="ImagePart"):
            await model(srv).request(
                ModelRequest([Message("user", [ImagePart(url="https://example.com/x.png")])])
            )
        assert srv.requests == []


async def test_error_line_and_malformed_line() -> None:
    with FakeOllama() as srv:
        srv.script(
            Turn(text="some words here", error_at=2, error_message="model runner crashed"),
            Reply(
                200,
                {"content-type": "application/x-ndjson"},
                chunks=[b'{"message": {"content": "a"}, "done": false}\n', b"not json\n"],
            ),
        )
        with pytest.raises(StreamInterrupted, match="model runner crashed"):
            await ask(model(srv), ModelRequest([Message.user("x")]), True)
        with pytest.raises(ModelResponseError, match="malformed") as info:
            await ask(model(srv), ModelRequest([Message.user("x")]), True)
    assert info.value.body == "not json"


async def test_http_error_body_is_typed() -> None:
    from vivace.errors import ModelHTTPError
    from vivace.testing.fake_providers import HTTPFault

    with FakeOllama() as srv:
        srv.script(HTTPFault(404, 'model "nope" not found, try pulling it first'))
        with pytest.raises(ModelHTTPError, match="try pulling it first") as info:
            await model(srv).request(ModelRequest([Message.user("x")]))
    assert info.value.status == 404


async def test_ollama_native_embeddings() -> None:
    from vivace.models.embeddings import OllamaEmbedder, aembed, resolve_embedder
    from vivace.testing.fake_providers import fake_embedding

    with FakeOllama() as srv:
        e = resolve_embedder("ollama/nomic-embed-text", base_url=srv.base_url, dimensions=4)
        assert isinstance(e, OllamaEmbedder)
        vectors = await aembed(["a", "b", "c"], e)
        [req] = srv.requests
    assert req.path == "/api/embed"
    assert req.json == {"model": "nomic-embed-text", "input": ["a", "b", "c"], "dimensions": 4}
    assert vectors == [fake_embedding(t, 4) for t in "abc"]
