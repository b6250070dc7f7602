"""Transport units: SSE decoding, Retry-After, client pool per event loop, strict schemas."""

from __future__ import annotations

import asyncio

import pytest

from vivace.models.http import RetryPolicy, SSEDecoder, get_client, parse_retry_after
from vivace.models.protocols.base import map_finish_reason, strict_json_schema


def decode(*chunks: bytes) -> list[tuple[str, str, str | None]]:
    d = SSEDecoder()
    out = []
    for c in chunks:
        out += d.feed(c)
    out += d.flush()
    return [(e.event, e.data, e.id) for e in out]


def test_sse_fields_comments_multiline_and_done() -> None:
    raw = (
        b": keep-alive\n\n"
        b'event: response.created\nid: 7\ndata: {"a":1}\n\n'
        b"data: line one\ndata: line two\n\n"
        b"data:no-space\n\n"
        b"retry: 100\nunknown: x\ndata: [DONE]\n\n"
    )
    assert decode(raw) == [
        ("response.created", '{"a":1}', "7"),
        ("message", "line one\nline two", "7"),
        ("message", "no-space", "7"),
        ("message", "[DONE]", "7"),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_sse_any_chunking_and_line_endings(size: int) -> None:
    for sep in (b"\n", b"\r\n", b"\r"):
        raw = sep.join([b"event: x", "data: héllo".encode(), b"", b"data: 2", b"", b""])
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert decode(*chunks) == [("x", "héllo", None), ("message", "2", None)], sep


def test_sse_unterminated_event_is_flushed() -> None:
    assert decode(b'data: {"partial"') == [("message", '{"partial"', None)]
    assert decode(b"event: only-a-name\n\n") == []


def test_retry_after_parsing_and_policy() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    p = RetryPolicy(backoff_base=1, backoff_max=4)
    assert p.delay(0, 7.5) == 7.5
    for attempt, cap in [(0, 1), (1, 2), (2, 4), (5, 4)]:
        d = p.delay(attempt)
        assert cap / 2 <= d <= cap


def test_one_client_per_provider_per_loop() -> None:
    async def grab() -> tuple[object, object, object]:
        return get_client("openai"), get_client("openai"), get_client("groq")

    a1, a2, g = asyncio.run(grab())
    b1, _, _ = asyncio.run(grab())
    assert a1 is a2 and a1 is not g
    assert b1 is not a1  # a new loop gets a new client


def test_strict_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "default": "x"},
            "b": {
                "type": "array",
                "items": {"type": "object", "properties": {"c": {"type": "integer"}}},
            },
            "d": {"oneOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["b"],
    }
    s = strict_json_schema(schema)
    assert s is not None
    assert s["required"] == ["a", "b", "d"] and s["additionalProperties"] is False
    assert "default" not in s["properties"]["a"]
    assert s["properties"]["b"]["items"]["required"] == ["c"]
    assert "anyOf" in s["properties"]["d"]
    assert schema["required"] == ["b"]  # input untouched
    assert (
        strict_json_schema({"type": "object", "additionalProperties": {"type": "string"}}) is None
    )


def test_finish_reason_mapping() -> None:
    assert map_finish_reason("stop") == "stop"
    assert map_finish_reason("stop", has_tool_calls=True) == "tool_calls"
    assert map_finish_reason("length") == "length"
    assert map_finish_reason("content_filter") == "content_filter"
    assert map_finish_reason("something_new") == "unknown"
    assert map_finish_reason(None) == "stop"


def test_import_vivace_models_does_not_import_http_clients() -> None:
    import subprocess
    import sys

    code = "import sys, vivace.models; from vivace.models import resolve_model, list_providers; list_providers(); print('httpx' in sys.modules, 'aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
