"""Messages: a role and a list of typed parts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .parts import Part, TextPart, ToolCallPart, ToolResultPart, part_from_dict

__all__ = [
    "Message",
    "Role",
    "UserInput",
    "input_to_message",
    "messages_from_json",
    "messages_to_json",
]

Role = Literal["system", "user", "assistant", "tool"]

UserInput = str | Part | Sequence[str | Part]
"""What a run accepts as input: text, one part, or a list of parts (multimodal)."""


@dataclass(slots=True)
class Message:
    """One message of a conversation.

    ``role`` is ``user``, ``assistant``, ``tool`` (tool results) or ``system``.
    ``meta`` carries optional, JSON-serializable extras (e.g. the run id that produced it).
    """

    role: Role
    parts: list[Part] = field(default_factory=list)
    meta: dict[str, Any] | None = None

    @classmethod
    def user(cls, content: UserInput) -> Message:
        """A user message from text or parts."""
        return input_to_message(content)

    @classmethod
    def assistant(cls, text: str) -> Message:
        """An assistant message with text."""
        return cls("assistant", [TextPart(text)])

    @property
    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.parts if type(p) is TextPart)

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        """The tool calls in this message."""
        return [p for p in self.parts if type(p) is ToolCallPart]

    @property
    def tool_results(self) -> list[ToolResultPart]:
        """The tool results in this message."""
        return [p for p in self.parts if type(p) is ToolResultPart]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "parts": [p.to_dict() for p in self.parts]}
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        role = d.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"unknown message role: {role!r}")
        return cls(role, [part_from_dict(p) for p in d.get("parts", ())], d.get("meta"))


def input_to_message(content: UserInput) -> Message:
    """Turn run input (text, a part or a list of text/parts) into a user message."""
    if isinstance(content, str):
        return Message("user", [TextPart(content)])
    if isinstance(content, Message):
        return content
    if isinstance(content, list | tuple):
        return Message("user", [TextPart(c) if isinstance(c, str) else c for c in content])
    if hasattr(content, "kind") and hasattr(content, "to_dict"):
        return Message("user", [content])  # type: ignore[list-item]
    raise TypeError(
        f"run input must be a string, a message part or a list of them, not {type(content).__name__}"
    )


def messages_to_json(messages: Iterable[Message]) -> str:
    """Serialize messages to JSON text."""
    return json.dumps([m.to_dict() for m in messages], ensure_ascii=False, separators=(",", ":"))


def messages_from_json(text: str | bytes) -> list[Message]:
    """Parse JSON produced by :func:`messages_to_json`."""
    return [Message.from_dict(d) for d in json.loads(text)]
