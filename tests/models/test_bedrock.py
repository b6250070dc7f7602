"""Bedrock Converse specifics: SigV4 (AWS test vectors, and verified by the fake server),
the binary event stream (CRCs, split frames, exceptions), wire mapping, agent loop."""

from __future__ import annotations

import json
import struct

import pytest

from vivace import Agent
from vivace.errors import ModelConfigError, ModelHTTPError, ModelResponseError, StreamInterrupted
from vivace.messages import ImagePart, Message, TextPart, ToolResultPart
from vivace.models import ModelRequest, ModelResponse, TextDelta
from vivace.models.protocols.bedrock import (
    BedrockModel,
    EventStreamDecoder,
    EventStreamError,
    sigv4_headers,
)
from vivace.models.router import get_model
from vivace.testing.fake_providers import FakeBedrock, ToolCall, Turn
from vivace.testing.fake_providers.bedrock import encode_frame

from .test_behaviour import PNG, WEATHER

# AWS Signature Version 4 test suite (get-vanilla / post-vanilla)
SUITE_KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CREDS = {"AKIDTESTKEY0001": "test/secret+key=value0123456789abcdefghij"}


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(
    ("method", "signature"),
    [
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_sigv4_matches_the_aws_test_suite(method: str, signature: str) -> None:
    headers = sigv4_headers(
        method,
        "https://example.amazonaws.com/",
        {},
        b"",
        access_key=SUITE_KEY[0],
        secret_key=SUITE_KEY[1],
        region="us-east-1",
        service="service",
        amz_date="20150830T123600Z",
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )
    assert headers["host"] == "example.amazonaws.com"


def signed_model(srv: FakeBedrock, secret: str | None = None, **options) -> BedrockModel:
    access = next(iter(CREDS))
    m = get_model(
        f"bedrock/{MODEL_ID}",
        base_url=srv.base_url,
        max_retries=0,
        aws_access_key_id=access,
        aws_secret_access_key=secret or CREDS[access],
        region="us-east-1",
        **options,
    )
    assert isinstance(m, BedrockModel)
    return m


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_fake_server_verifies_the_signature(stream: bool) -> None:
    with FakeBedrock(credentials=CREDS) as srv:
        srv.script(Turn(text="signed and sealed"), Turn(text="again"))
        m = signed_model(srv, aws_session_token="SESSION-TOKEN-123456")
        req = ModelRequest([Message.user("hi")])
        if stream:
            final = None
            async for ev in m.stream(req):
                final = ev
            assert isinstance(final, ModelResponse) and final.text == "signed and sealed"
        else:
            assert (await m.request(req)).text == "signed and sealed"
        sent = srv.requests[0]
        assert srv.verified == 1
        assert sent.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/" + (
            "converse-stream" if stream else "converse"
        )
        assert sent.headers["x-amz-security-token"] == "SESSION-TOKEN-123456"
        assert "x-amz-security-token" in sent.headers["authorization"]
        assert "SESSION-TOKEN" not in repr(m) and "test/secret" not in repr(m.__dict__)


async def test_wrong_secret_is_rejected_by_the_fake() -> None:
    with FakeBedrock(credentials=CREDS) as srv:
        srv.script(Turn(text="never"))
        with pytest.raises(ModelHTTPError, match="signature we calculated does not match") as info:
            await signed_model(srv, secret="wrong-secret-000000000000000000000000000").request(
                ModelRequest([Message.user("hi")])
            )
    assert info.value.status == 403 and srv.verified == 0


async def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    access, secret = next(iter(CREDS.items()))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with FakeBedrock(credentials=CREDS) as srv:
        srv.script(Turn(text="env ok"))
        m = get_model(f"bedrock/{MODEL_ID}", base_url=srv.base_url, max_retries=0)
        assert (await m.request(ModelRequest([Message.user("hi")]))).text == "env ok"
        assert srv.verified == 1


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(ModelConfigError, match="AWS_ACCESS_KEY_ID"):
        get_model(f"bedrock/{MODEL_ID}")


def test_event_stream_decoder_frames_split_anywhere() -> None:
    frames = [
        encode_frame({":event-type": "a", ":message-type": "event"}, b'{"x":1}'),
        encode_frame({":event-type": "b", ":message-type": "event"}, b""),
        encode_frame({":event-type": "c", ":message-type": "event"}, "é€".encode()),
    ]
    blob = b"".join(frames)
    for size in (1, 3, 7, len(blob)):
        d = EventStreamDecoder()
        got = []
        for i in range(0, len(blob), size):
            got += d.feed(blob[i : i + size])
        assert [(h[":event-type"], p) for h, p in got] == [
            ("a", b'{"x":1}'),
            ("b", b""),
            ("c", "é€".encode()),
        ]
        assert d.pending == 0


def test_event_stream_decoder_typed_headers_and_crc_checks() -> None:
    # headers of other types: bool true, int32, bytes
    hb = b"\x04flag\x00" + b"\x03num\x04" + struct.pack(">i", -7) + b"\x03raw\x06\x00\x02hi"
    import zlib

    total = 12 + len(hb) + 2 + 4
    prelude = struct.pack(">II", total, len(hb))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + b"{}"
    frame = body + struct.pack(">I", zlib.crc32(body))
    [(headers, payload)] = EventStreamDecoder().feed(frame)
    assert headers == {"flag": True, "num": -7, "raw": b"hi"} and payload == b"{}"
    bad_msg = frame[:-5] + bytes([frame[-5] ^ 1]) + frame[-4:]
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamDecoder().feed(bad_msg)
    bad_prelude = frame[:4] + bytes([frame[4] ^ 1]) + frame[5:]
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bad_prelude)


async def test_crc_mismatch_mid_stream_is_a_typed_error() -> None:
    with FakeBedrock(corrupt_crc_at=3) as srv:
        srv.script(Turn(text="a long enough answer to have frames"))
        seen: list[str] = []
        with pytest.raises(ModelResponseError, match="CRC mismatch") as info:
            async for ev in get_model(
                f"bedrock/{MODEL_ID}", base_url=srv.base_url, api_key="bedrock-api-key-0001"
            ).stream(ModelRequest([Message.user("x")])):
                if isinstance(ev, TextDelta):
                    seen.append(ev.text)
    assert seen and info.value.provider == "bedrock"


async def test_exception_frame_mid_stream() -> None:
    with FakeBedrock() as srv:
        srv.script(Turn(text="abcdefghijklmnop", error_at=3, error_message="Model is busy"))
        m = get_model(f"bedrock/{MODEL_ID}", base_url=srv.base_url, api_key="bedrock-api-key-0001")
        with pytest.raises(StreamInterrupted, match="Model is busy") as info:
            async for _ in m.stream(ModelRequest([Message.user("x")])):
                pass
    assert "modelStreamErrorException" in info.value.message


async def test_wire_mapping_of_tools_results_and_images() -> None:
    with FakeBedrock() as srv:
        srv.script(Turn(text="ok"))
        m = get_model(f"bedrock/{MODEL_ID}", base_url=srv.base_url, api_key="bedrock-api-key-0001")
        history = [
            Message("user", [TextPart("Look"), ImagePart(data=PNG, media_type="image/png")]),
            Message("assistant", [ToolCallPartFactory()]),
            Message(
                "tool",
                [
                    ToolResultPart("tu_1", "get_weather", {"temp": 21}),
                    ToolResultPart("tu_2", "get_weather", "boom", is_error=True),
                ],
            ),
        ]
        await m.request(
            ModelRequest(
                history,
                instructions="Sys.",
                tools=[WEATHER],
                settings={"max_tokens": 99, "stop": "X"},
            )
        )
        req = srv.requests[0]
    assert req.headers["authorization"] == "Bearer bedrock-api-key-0001"
    body = req.json
    assert body["system"] == [{"text": "Sys."}]
    assert body["inferenceConfig"] == {"maxTokens": 99, "stopSequences": ["X"]}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": WEATHER.parameters}
    user, assistant, results = body["messages"]
    assert user["content"][1] == {
        "image": {
            "format": "png",
            "source": {"bytes": __import__("base64").b64encode(PNG).decode()},
        }
    }
    assert assistant["content"] == [
        {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Oslo"}}}
    ]
    assert results["content"] == [
        {
            "toolResult": {
                "toolUseId": "tu_1",
                "content": [{"json": {"temp": 21}}],
                "status": "success",
            }
        },
        {"toolResult": {"toolUseId": "tu_2", "content": [{"text": "boom"}], "status": "error"}},
    ]


def ToolCallPartFactory():
    from vivace.messages import ToolCallPart

    return ToolCallPart("tu_1", "get_weather", {"city": "Oslo"})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_agent_loop_tools_and_structured_output_via_final_result_tool(stream: bool) -> None:
    from pydantic import BaseModel

    class Report(BaseModel):
        city: str
        temp: float

    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"21 degrees in {city}"

    with FakeBedrock(credentials=CREDS) as srv:
        srv.script(
            Turn(tool_calls=[ToolCall("get_weather", {"city": "Lima"}, id="tu_a")]),
            Turn(tool_calls=[ToolCall("final_result", {"city": "Lima", "temp": 21})]),
        )
        agent = Agent(model=signed_model(srv), tools=[get_weather], output_type=Report)
        if stream:
            s = agent.astream("Report on Lima")
            async for _ in s:
                pass
            result = s.result
        else:
            result = await agent.arun("Report on Lima")
        second = srv.requests[1].json
    assert result is not None and result.output == Report(city="Lima", temp=21)
    assert srv.verified == 2
    assert [t["toolSpec"]["name"] for t in second["toolConfig"]["tools"]] == [
        "get_weather",
        "final_result",
    ]
    assert second["messages"][-1]["content"][0]["toolResult"]["content"] == [
        {"text": "21 degrees in Lima"}
    ]


def test_eventstream_payloads_are_json_objects() -> None:
    srv = FakeBedrock()
    from vivace.testing.fake_providers import RecordedRequest

    events = srv.render_events(
        Turn(text="hi", tool_calls=[ToolCall("f", {"a": 1}, id="t")]),
        RecordedRequest("POST", "/model/x/converse-stream", "", {}, b"{}"),
    )
    kinds = []
    for h, p in EventStreamDecoder().feed(b"".join(events)):
        kinds.append(h[":event-type"])
        assert isinstance(json.loads(p), dict)
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert "contentBlockStart" in kinds
