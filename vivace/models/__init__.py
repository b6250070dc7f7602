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
from .router import FallbackModel, get_model, list_providers, resolve_model

__all__ = [
    "FallbackModel",
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
    "aembed",
    "embed",
    "get_model",
    "list_providers",
    "register_provider",
    "resolve_model",
]


def __getattr__(name: str) -> object:
    # registry/embeddings are loaded on first use (they never import httpx either)
    if name == "register_provider":
        from .registry import register_provider

        return register_provider
    if name in ("embed", "aembed"):
        from . import embeddings

        return getattr(embeddings, name)
    raise AttributeError(f"module 'vivace.models' has no attribute {name!r}")
