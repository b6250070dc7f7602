"""API keys never show up in errors, reprs, logs or serialized errors."""

from __future__ import annotations

import logging
import pickle

import pytest

from vivace.errors import ModelError, VivaceError
from vivace.messages import Message
from vivace.models import ModelRequest
from vivace.models.router import get_model
from vivace.testing.fake_providers import FakeProviderServer, HTTPFault, Turn

from .cases import API_KEY, Case, case_param

REQ = ModelRequest([Message.user("hi")])


def assert_clean(*texts: str) -> None:
    for t in texts:
        assert API_KEY not in t


@case_param
@pytest.mark.parametrize(
    "fault",
    [
        HTTPFault(401, f"Incorrect API key provided: {API_KEY}. Find your key at ..."),
        HTTPFault(500, f"internal error for key {API_KEY}", html=False),
        HTTPFault(502, body=f"<html><title>bad {API_KEY}</title></html>".encode()),
    ],
    ids=["401-echoes-key", "500-echoes-key", "html-echoes-key"],
)
async def test_failing_request_never_leaks_the_key(
    case: Case, srv: FakeProviderServer, fault: HTTPFault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    srv.default = fault
    model = case.make_model(srv, max_retries=1)
    with pytest.raises(ModelError) as info:
        await model.request(REQ)
    err = info.value
    header, value = case.auth_header
    assert srv.requests[0].headers[header] == value  # it was sent
    restored = pickle.loads(pickle.dumps(err))
    assert_clean(
        str(err),
        repr(err),
        err.message,
        err.body or "",
        repr(err.to_dict()),
        repr(restored.to_dict()),
        repr(model),
        repr(model.__dict__),
        repr(getattr(model, "endpoint", "")),
        caplog.text,
    )
    assert "***" in (err.message + (err.body or ""))


@case_param
async def test_stream_error_event_never_leaks_the_key(case: Case, srv: FakeProviderServer) -> None:
    srv.script(Turn(text="hello there", error_at=3, error_message=f"bad key {API_KEY}"))
    with pytest.raises(VivaceError) as info:
        async for _ in case.make_model(srv).stream(REQ):
            pass
    assert_clean(str(info.value), repr(info.value.to_dict()))


async def test_connection_error_never_leaks_the_key() -> None:
    model = get_model(
        "openai/gpt-4o", base_url="http://127.0.0.1:9/v1", api_key=API_KEY, max_retries=0
    )
    with pytest.raises(ModelError) as info:
        await model.request(REQ)
    assert_clean(str(info.value), repr(info.value.to_dict()), repr(model))
    tb = "".join(__import__("traceback").format_exception(info.value))
    assert_clean(tb)
