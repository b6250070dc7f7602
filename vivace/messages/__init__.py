"""The content model: messages made of typed parts, with lossless JSON round-trip."""

from .message import (
    Message,
    Role,
    UserInput,
    input_to_message,
    messages_from_json,
    messages_to_json,
)
from .parts import (
    AudioPart,
    FilePart,
    ImagePart,
    MediaPart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    VideoPart,
    part_from_dict,
)

__all__ = [
    "AudioPart",
    "FilePart",
    "ImagePart",
    "MediaPart",
    "Message",
    "Part",
    "ReasoningPart",
    "Role",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "UserInput",
    "VideoPart",
    "input_to_message",
    "messages_from_json",
    "messages_to_json",
    "part_from_dict",
]
