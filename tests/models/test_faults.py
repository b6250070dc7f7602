"""Fault injection against every protocol's fake server."""

from __future__ import annotations

import asyncio

import pytest

from vivace.errors import (
    ModelConnectionError,
    ModelHTTPError,
    ModelRateLimited,
    ModelResponseError,
    ModelTimeout,
    StreamInterrupted,
)
from vivace.messages import Message
from vivace.models import ModelRequest, ModelResponse, TextDelta
from vivace.testing.fake_providers import FakeProviderServer, HTTPFault, Reply, Turn

from .cases import API_KEY, Case, case_param

REQ = ModelRequest([Message.user("hi")])


async def drain(model, req=REQ) -> tuple[ModelResponse | None, list[str]]:
    texts: list[str] = []
    final = None
    async for ev in model.stream(req):
        if isinstance(ev, TextDelta):
            texts.append(ev.text)
        elif isinstance(ev, ModelResponse):
            final = ev
    return final, texts


both = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


async def call(model, stream: bool) -> ModelResponse:
    if stream:
        final, _ = await drain(model)
        assert final is not None
        return final
    return await model.request(REQ)


@case_param
@both
async def test_429_with_retry_after_then_success(
    case: Case, srv: FakeProviderServer, stream: bool
) -> None:
    srv.script(HTTPFault(429, "Rate limit reached", retry_after=1), Turn(text="after the wait"))
    resp = await call(case.make_model(srv), stream)
    assert resp.text == "after the wait"
    assert len(srv.requests) == 2


@case_param
async def test_retry_after_beyond_limit_is_raised_at_once(
    case: Case, srv: FakeProviderServer
) -> None:
    srv.script(HTTPFault(429, "Rate limit reached", retry_after=3600), Turn(text="never"))
    with pytest.raises(ModelRateLimited) as info:
        await case.make_model(srv).request(REQ)
    assert info.value.retry_after == 3600 and info.value.status == 429
    assert "Rate limit reached" in info.value.message
    assert len(srv.requests) == 1


@case_param
@both
async def test_500_then_success(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(HTTPFault(500, "boom"), HTTPFault(503, "busy"), Turn(text="recovered"))
    resp = await call(case.make_model(srv), stream)
    assert resp.text == "recovered" and len(srv.requests) == 3


@case_param
async def test_retries_exhausted(case: Case, srv: FakeProviderServer) -> None:
    srv.default = HTTPFault(500, "still broken")
    with pytest.raises(ModelHTTPError) as info:
        await case.make_model(srv, max_retries=1).request(REQ)
    err = info.value
    assert (err.status, err.provider, err.model) == (500, case.provider, case.model)
    assert "still broken" in err.message and "still broken" in (err.body or "")
    assert len(srv.requests) == 2


@case_param
async def test_400_is_not_retried(case: Case, srv: FakeProviderServer) -> None:
    srv.script(HTTPFault(400, "Invalid 'messages': empty"), Turn(text="unused"))
    with pytest.raises(ModelHTTPError, match="Invalid 'messages'") as info:
        await case.make_model(srv).request(REQ)
    assert info.value.status == 400 and not info.value.retryable
    assert len(srv.requests) == 1


@case_param
@both
async def test_html_error_page(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(HTTPFault(502, html=True))
    with pytest.raises(ModelHTTPError) as info:
        await call(case.make_model(srv, max_retries=0), stream)
    assert info.value.status == 502
    assert "HTML" in info.value.message and "502 Bad Gateway" in info.value.message


@case_param
async def test_non_json_success_body(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Reply(200, {"content-type": "text/plain"}, b"upstream said hello"))
    with pytest.raises(ModelResponseError, match="upstream said hello"):
        await case.make_model(srv).request(REQ)


@case_param
@both
async def test_read_timeout(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(Turn(text="too late", delay=3))
    with pytest.raises(ModelTimeout):
        await call(case.make_model(srv, timeout=0.3, max_retries=0), stream)


@case_param
async def test_timeout_is_retried(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Turn(text="too late", delay=3), Turn(text="in time"))
    resp = await case.make_model(srv, timeout=0.5, max_retries=1).request(REQ)
    assert resp.text == "in time" and len(srv.requests) == 2


async def test_connection_refused() -> None:
    import socket

    from vivace.models.router import get_model

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = get_model(
        "openai/gpt-4o", base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=1
    )
    with pytest.raises(ModelConnectionError) as info:
        await model.request(REQ)
    assert not isinstance(info.value, ModelTimeout)
    assert info.value.provider == "openai"


@case_param
async def test_connection_dropped_mid_stream(case: Case, srv: FakeProviderServer) -> None:
    srv.script(
        Turn(text="a long answer that will be cut off before the end, surely", drop_after=8),
        Turn(text="not retried"),
    )
    seen: list[str] = []
    with pytest.raises(StreamInterrupted):
        async for ev in case.make_model(srv).stream(REQ):
            if isinstance(ev, TextDelta):
                seen.append(ev.text)
    assert seen, "deltas before the drop are delivered"
    assert len(srv.requests) == 1  # no retry once bytes were consumed


@case_param
async def test_malformed_chunk(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Turn(text="hello world", malformed_at=3))
    with pytest.raises(ModelResponseError) as info:
        await drain(case.make_model(srv))
    assert "malformed" in info.value.message and info.value.body


@case_param
async def test_error_event_mid_stream(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Turn(text="hello world, and more", error_at=4, error_message="Overloaded right now"))
    with pytest.raises(StreamInterrupted, match="Overloaded right now"):
        await drain(case.make_model(srv))


@case_param
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_unknown_finish_reason(case: Case, srv: FakeProviderServer, stream: bool) -> None:
    srv.script(Turn(text="hm", finish_reason="brand_new_reason"))
    resp = await call(case.make_model(srv), stream)
    assert resp.finish_reason == "unknown" and resp.raw_finish_reason == "brand_new_reason"
    assert resp.text == "hm"


@case_param
async def test_length_finish_reason(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Turn(text="cut", finish_reason="length"))
    assert (await case.make_model(srv).request(REQ)).finish_reason == "length"


@case_param
async def test_truncated_stream_is_an_error(case: Case, srv: FakeProviderServer) -> None:
    # a server that closes cleanly after a few events, without finishing the answer
    events = case.fake().render_events(Turn(text="partial answer here"), _fake_req(case))
    srv.script(Reply(200, {"content-type": "text/event-stream"}, chunks=events[:3]))
    with pytest.raises(StreamInterrupted, match="ended before"):
        await drain(case.make_model(srv))


def _fake_req(case: Case):
    import json

    from vivace.testing.fake_providers import RecordedRequest

    return RecordedRequest(
        "POST", "/", "", {}, json.dumps({"model": case.model, "stream": True}).encode()
    )


@case_param
async def test_cancellation_closes_the_http_stream(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Turn(text="x" * 400, chunk_chars=1, event_delay=0.01))
    stream = case.make_model(srv).stream(REQ)
    got = 0
    async for ev in stream:
        if isinstance(ev, TextDelta):
            got += 1
            if got == 3:
                break
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(200):
        if srv.disconnects:
            break
        await asyncio.sleep(0.02)
    assert srv.disconnects == 1


@case_param
async def test_task_cancellation_closes_the_http_stream(
    case: Case, srv: FakeProviderServer
) -> None:
    srv.script(Turn(text="y" * 400, chunk_chars=1, event_delay=0.01))
    started = asyncio.Event()

    async def consume() -> None:
        async for ev in case.make_model(srv).stream(REQ):
            if isinstance(ev, TextDelta):
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if srv.disconnects:
            break
        await asyncio.sleep(0.02)
    assert srv.disconnects == 1
