"""Typed message parts: text, media, tool calls, tool results and reasoning.

Each part is a small slotted dataclass with a ``kind`` tag. ``to_dict``/``part_from_dict``
round-trip losslessly through JSON (bytes travel as base64).
"""

from __future__ import annotations

import base64
import json
import mimetypes
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..errors import UserError

__all__ = [
    "AudioPart",
    "FilePart",
    "ImagePart",
    "MediaPart",
    "Part",
    "ReasoningPart",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "VideoPart",
    "part_from_dict",
]


@dataclass(slots=True)
class TextPart:
    """Plain text."""

    text: str
    kind: ClassVar[Literal["text"]] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "text", "text": self.text}


@dataclass(slots=True)
class ReasoningPart:
    """Reasoning ("thinking") content. ``signature`` is echoed back to providers that need it."""

    text: str
    signature: str | None = None
    provider: str | None = None
    redacted: bool = False
    kind: ClassVar[Literal["reasoning"]] = "reasoning"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "reasoning", "text": self.text}
        if self.signature is not None:
            out["signature"] = self.signature
        if self.provider is not None:
            out["provider"] = self.provider
        if self.redacted:
            out["redacted"] = True
        return out


@dataclass(slots=True)
class MediaPart:
    """Binary content given as ``data`` (bytes), a ``url`` or a local ``path``.

    Exactly one source is expected. ``media_type`` is guessed from the path or URL when
    missing. Use the subclasses :class:`ImagePart`, :class:`AudioPart`, :class:`VideoPart`
    and :class:`FilePart`.
    """

    data: bytes | None = None
    url: str | None = None
    path: str | None = None
    media_type: str | None = None
    name: str | None = None
    kind: ClassVar[str] = "file"

    def __post_init__(self) -> None:
        sources = (self.data is not None) + (self.url is not None) + (self.path is not None)
        if sources != 1:
            raise UserError(
                f"{type(self).__name__} needs exactly one of data, url or path (got {sources})"
            )
        if self.media_type is None:
            ref = self.path or self.url
            if ref and not ref.startswith("data:"):
                self.media_type = mimetypes.guess_type(ref)[0]
            elif ref:  # data: URL carries its own media type
                self.media_type = ref[5:].split(";", 1)[0].split(",", 1)[0] or None

    def read_bytes(self) -> bytes:
        """The content as bytes: ``data``, the file at ``path``, or a decoded ``data:`` URL.

        Remote URLs are not fetched here (adapters pass them to providers that accept URLs).
        """
        if self.data is not None:
            return self.data
        if self.path is not None:
            with open(self.path, "rb") as fh:
                return fh.read()
        assert self.url is not None
        if self.url.startswith("data:"):
            header, _, payload = self.url.partition(",")
            if header.endswith(";base64"):
                return base64.b64decode(payload)
            from urllib.parse import unquote_to_bytes

            return unquote_to_bytes(payload)
        raise UserError(f"{type(self).__name__} at {self.url!r} is a remote URL, not inline data")

    def base64(self) -> str:
        """The content as base64 text."""
        return base64.b64encode(self.read_bytes()).decode("ascii")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.url is not None:
            out["url"] = self.url
        if self.path is not None:
            out["path"] = self.path
        if self.media_type is not None:
            out["media_type"] = self.media_type
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(slots=True)
class ImagePart(MediaPart):
    """An image (png, jpeg, webp, gif...)."""

    kind: ClassVar[str] = "image"


@dataclass(slots=True)
class AudioPart(MediaPart):
    """Audio (wav, mp3...)."""

    kind: ClassVar[str] = "audio"


@dataclass(slots=True)
class VideoPart(MediaPart):
    """Video (mp4, webm...)."""

    kind: ClassVar[str] = "video"


@dataclass(slots=True)
class FilePart(MediaPart):
    """Any other file (pdf, csv...)."""

    kind: ClassVar[str] = "file"


@dataclass(slots=True)
class ToolCallPart:
    """A call the model asks for. ``arguments`` is the raw JSON text or an already parsed dict.

    ``meta`` holds provider data that must be echoed back (e.g. Gemini's thought signature).
    """

    id: str
    name: str
    arguments: str | dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] | None = None
    kind: ClassVar[Literal["tool_call"]] = "tool_call"

    def arguments_json(self) -> str:
        """The arguments as JSON text."""
        a = self.arguments
        return a if isinstance(a, str) else json.dumps(a, separators=(",", ":"))

    def arguments_dict(self) -> dict[str, Any]:
        """The arguments parsed into a dict (``ValueError`` when they are not a JSON object)."""
        a = self.arguments
        if isinstance(a, dict):
            return a
        parsed = json.loads(a) if a.strip() else {}
        if not isinstance(parsed, dict):
            raise ValueError("tool arguments must be a JSON object")
        return parsed

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "tool_call",
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
        }
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass(slots=True)
class ToolResultPart:
    """The result of a tool call. ``content`` is JSON-serializable; ``is_error`` marks failures."""

    call_id: str
    name: str
    content: Any
    is_error: bool = False
    kind: ClassVar[Literal["tool_result"]] = "tool_result"

    def content_text(self) -> str:
        """The content as text for providers that take strings."""
        c = self.content
        if isinstance(c, str):
            return c
        return json.dumps(c, ensure_ascii=False, default=str)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "tool_result",
            "call_id": self.call_id,
            "name": self.name,
            "content": self.content,
        }
        if self.is_error:
            out["is_error"] = True
        return out


Part = (
    TextPart
    | ReasoningPart
    | ImagePart
    | AudioPart
    | VideoPart
    | FilePart
    | ToolCallPart
    | ToolResultPart
)

_MEDIA: dict[str, type[MediaPart]] = {
    "image": ImagePart,
    "audio": AudioPart,
    "video": VideoPart,
    "file": FilePart,
}


def part_from_dict(d: dict[str, Any]) -> Part:
    """Rebuild a part from :meth:`to_dict` output (raises ``ValueError`` on unknown kinds)."""
    kind = d.get("kind")
    if kind == "text":
        return TextPart(d["text"])
    if kind == "tool_call":
        return ToolCallPart(d["id"], d["name"], d.get("arguments", {}), d.get("meta"))
    if kind == "tool_result":
        return ToolResultPart(d["call_id"], d["name"], d.get("content"), d.get("is_error", False))
    if kind == "reasoning":
        return ReasoningPart(
            d.get("text", ""), d.get("signature"), d.get("provider"), d.get("redacted", False)
        )
    cls = _MEDIA.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown message part kind: {kind!r}")
    data = d.get("data")
    return cls(
        data=base64.b64decode(data) if data is not None else None,
        url=d.get("url"),
        path=d.get("path"),
        media_type=d.get("media_type"),
        name=d.get("name"),
    )  # type: ignore[return-value]
