"""Models: the :class:`Model` interface, and the router that turns ``"provider/model"``
strings into adapters for the providers' wire protocols."""

from .base import (
    FinishReason,
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    OutputSpec,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolDefinition,
    Usage,
)
from .router import resolve_model

__all__ = [
    "FinishReason",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OutputSpec",
    "ReasoningDelta",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
    "resolve_model",
]
