"""The OpenAI-compatible endpoints, driven by the official ``openai`` client against a real
``vivace serve`` process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from .conftest import ServeProcess

    db = tmp_path_factory.mktemp("oai") / "v.db"
    with ServeProcess(
        "tests.server.apps:app", "--storage", f"sqlite:///{db}", env={"VIVACE_API_KEY": "sk-test"}
    ) as srv:
        yield srv


@pytest.fixture
def oai(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)


def test_chat_completion(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="weather", messages=[{"role": "user", "content": "weather in Paris?"}]
    )
    assert r.object == "chat.completion"
    assert r.model == "weather"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "done: sunny in Paris"
    assert r.choices[0].finish_reason == "stop"
    assert (
        r.usage is not None
        and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    )


def test_chat_completion_stream(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="echo",
            messages=[
                {"role": "system", "content": "ignored"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "echo: first"},
                {"role": "user", "content": "hello stream"},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello stream"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_responses_api(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="echo", input="hi responses")
    assert r.object == "response" and r.status == "completed"
    assert r.output_text == "echo: hi responses"
    assert r.usage is not None and r.usage.total_tokens > 0


def test_responses_stream(oai: openai.OpenAI) -> None:
    events = list(
        oai.responses.create(
            model="echo",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "streamed"}]}],
            stream=True,
        )
    )
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "echo: streamed"
    assert events[-1].response.output_text == "echo: streamed"


def test_unknown_model_and_bad_key(server: Any, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])


def test_session_only_via_the_header_user_is_the_user(server: Any, oai: openai.OpenAI) -> None:
    """The header binds the session; ``user`` is only the user id (never a session)."""
    h = {"Authorization": "Bearer sk-test", "X-Vivace-Session-Id": "oai-s1"}
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "x"}], "user": "u9"},
        headers=h,
    )
    assert r.status_code == 200 and r.headers["x-vivace-session-id"] == "oai-s1"
    r = oai.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "x"}], user="u9"
    )
    assert r.headers["x-vivace-session-id"] not in ("u9", "oai-s1")  # a new session


def test_image_input(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="echo",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "echo: see"
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(
            model="echo",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}
                    ],
                }
            ],
        )


def test_chat_is_stateless_without_the_session_header(server: Any, oai: openai.OpenAI) -> None:
    """Issue 8 item 7: ``user`` does not bind a session; the client's messages are the
    conversation, as on every OpenAI-compatible server."""
    convo = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "my name is Ann"},
        {"role": "assistant", "content": "hello Ann"},
        {"role": "user", "content": "what is my name?"},
    ]
    r = oai.chat.completions.create(model="transcript", messages=convo, user="ann")  # type: ignore[arg-type]
    assert r.choices[0].message.content == (
        "user:my name is Ann | assistant:hello Ann | user:what is my name?"
    )
    # the same user again, a new conversation: nothing of the first one leaks in
    r = oai.chat.completions.create(
        model="transcript", messages=[{"role": "user", "content": "hi"}], user="ann"
    )
    assert r.choices[0].message.content == "user:hi"
    r2 = oai.responses.create(model="transcript", input=convo[1:], user="ann")  # type: ignore[arg-type]
    assert r2.output_text == "user:my name is Ann | assistant:hello Ann | user:what is my name?"


def test_the_session_header_continues_a_stored_session(server: Any, oai: openai.OpenAI) -> None:
    h = {"X-Vivace-Session-Id": "oai-story"}
    msgs = [{"role": "user", "content": "one"}]
    oai.chat.completions.create(model="transcript", messages=msgs, extra_headers=h)  # type: ignore[arg-type]
    r = oai.chat.completions.create(
        model="transcript",
        messages=[{"role": "user", "content": "ignored"}, {"role": "user", "content": "two"}],
        extra_headers=h,
    )
    # history from storage, only the last user message from the client
    assert r.choices[0].message.content == "user:one | assistant:user:one | user:two"
