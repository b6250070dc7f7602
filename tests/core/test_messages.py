import base64
import json

import pytest

from vivace.errors import UserError
from vivace.messages import (
    AudioPart,
    FilePart,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    VideoPart,
    input_to_message,
    messages_from_json,
    messages_to_json,
)


def all_kinds_message(tmp_path) -> list[Message]:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    return [
        Message("system", [TextPart("be brief")]),
        Message(
            "user",
            [
                TextPart("look"),
                ImagePart(data=b"\x89PNG\r\n\x1a\n\x00\xff", media_type="image/png"),
                AudioPart(url="https://example.com/a.wav"),
                VideoPart(url="data:video/mp4;base64,AAAA"),
                FilePart(path=str(pdf), name="doc.pdf"),
            ],
        ),
        Message(
            "assistant",
            [
                ReasoningPart("thinking...", signature="sig", provider="anthropic"),
                ToolCallPart("c1", "get", '{"a": 1}', meta={"thought_signature": "x"}),
                ToolCallPart("c2", "get", {"a": 2}),
            ],
            meta={"run_id": "r1"},
        ),
        Message(
            "tool",
            [
                ToolResultPart("c1", "get", {"ok": True, "items": [1, 2]}),
                ToolResultPart("c2", "get", "boom", is_error=True),
            ],
        ),
    ]


def test_json_round_trip_is_lossless(tmp_path):
    msgs = all_kinds_message(tmp_path)
    text = messages_to_json(msgs)
    json.loads(text)  # valid JSON
    back = messages_from_json(text)
    assert back == msgs
    assert messages_to_json(back) == text


def test_media_sources_and_types(tmp_path):
    img = ImagePart(data=b"abc", media_type="image/png")
    assert img.base64() == base64.b64encode(b"abc").decode()
    assert AudioPart(url="https://x/y.mp3").media_type == "audio/mpeg"
    assert VideoPart(url="data:video/mp4;base64,AAAA").media_type == "video/mp4"
    assert VideoPart(url="data:video/mp4;base64,AAAA").read_bytes() == base64.b64decode("AAAA")
    p = tmp_path / "x.png"
    p.write_bytes(b"img")
    f = ImagePart(path=str(p))
    assert f.media_type == "image/png" and f.read_bytes() == b"img"
    with pytest.raises(UserError, match="exactly one"):
        ImagePart()
    with pytest.raises(UserError, match="exactly one"):
        ImagePart(data=b"x", url="https://x")
    with pytest.raises(UserError, match="remote URL"):
        ImagePart(url="https://example.com/x.png").read_bytes()


def test_unknown_kind_and_role_are_errors():
    with pytest.raises(ValueError, match="unknown message part kind"):
        Message.from_dict({"role": "user", "parts": [{"kind": "hologram"}]})
    with pytest.raises(ValueError, match="unknown message role"):
        Message.from_dict({"role": "robot", "parts": []})


def test_input_forms():
    assert input_to_message("hi").parts == [TextPart("hi")]
    img = ImagePart(data=b"x", media_type="image/png")
    m = input_to_message(["what is this?", img])
    assert m.role == "user" and m.parts == [TextPart("what is this?"), img]
    assert input_to_message(img).parts == [img]
    with pytest.raises(TypeError, match="run input"):
        input_to_message(42)  # type: ignore[arg-type]


def test_message_helpers():
    m = Message("assistant", [TextPart("a"), ToolCallPart("1", "f", "{}"), TextPart("b")])
    assert m.text == "ab"
    assert [c.id for c in m.tool_calls] == ["1"]
    assert ToolCallPart("1", "f", '{"x": 1}').arguments_dict() == {"x": 1}
    assert ToolCallPart("1", "f", "").arguments_dict() == {}
    with pytest.raises(ValueError):
        ToolCallPart("1", "f", "[1]").arguments_dict()
