"""The model interface every provider adapter and test model implements.

A :class:`Model` turns a :class:`ModelRequest` (instructions, messages, tool definitions,
output spec, settings) into a :class:`ModelResponse`, either at once (:meth:`Model.request`)
or as a stream of :data:`StreamEvent` ending with the complete response
(:meth:`Model.stream`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..messages import Message, Part, ReasoningPart, TextPart, ToolCallPart

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
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "unknown"]

ModelSettings = dict[str, Any]
"""Per-request settings: ``temperature``, ``max_tokens``, ``top_p``, ``seed``, ``stop``,
``timeout``, ``parallel_tool_calls``, ``reasoning_effort``... Adapters map the ones their
protocol knows and ignore the rest."""


_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "requests",
    "tool_calls",
)


@dataclass(slots=True)
class Usage:
    """Token and request counts, and the cost in USD. Adds up with ``+=``.

    ``cost`` comes from the model catalog's price of the model that answered (see
    :mod:`vivace.models.catalog`); ``None`` when the price is unknown. Summing a known cost
    and an unknown one gives the known one.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 0
    tool_calls: int = 0
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __iadd__(self, other: Usage) -> Usage:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.requests += other.requests
        self.tool_calls += other.tool_calls
        cost = other.cost
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost
        return self

    def __sub__(self, other: Usage) -> Usage:
        """What was spent since ``other`` (an earlier snapshot of the same counter)."""
        out = Usage(*(getattr(self, k) - getattr(other, k) for k in _COUNTS))
        if self.cost is not None:
            out.cost = self.cost - (other.cost or 0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The counts; ``cost`` only when it is known."""
        d: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "requests": self.requests,
            "tool_calls": self.tool_calls,
        }
        if self.cost is not None:
            d["cost"] = self.cost
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        cost = d.get("cost")
        usage = cls(*(int(d.get(k) or 0) for k in _COUNTS))
        if cost is not None:
            usage.cost = float(cost)
        return usage


@dataclass(slots=True)
class ToolDefinition:
    """What the model sees of a tool: name, description and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool | None = None


@dataclass(slots=True)
class OutputSpec:
    """How the run wants structured output.

    ``mode`` is ``native`` (the provider's JSON-schema mode) or ``tool`` (a final-result tool,
    already listed among the request's tools). ``schema`` is always a JSON object schema.
    """

    name: str
    schema: dict[str, Any]
    mode: Literal["native", "tool"] = "native"
    description: str | None = None
    strict: bool = True


@dataclass(slots=True)
class ModelRequest:
    """Everything a model needs for one turn."""

    messages: list[Message]
    instructions: str | None = None
    tools: list[ToolDefinition] = field(default_factory=list)
    output: OutputSpec | None = None
    settings: ModelSettings | None = None


@dataclass(slots=True)
class ModelResponse:
    """One complete model turn."""

    parts: list[Part]
    usage: Usage = field(default_factory=Usage)
    finish_reason: FinishReason = "stop"
    model_name: str | None = None
    provider: str | None = None
    response_id: str | None = None
    refusal: str | None = None
    raw_finish_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if type(p) is TextPart)

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if type(p) is ToolCallPart]

    @property
    def reasoning(self) -> str:
        return "".join(p.text for p in self.parts if type(p) is ReasoningPart)

    def to_message(self) -> Message:
        return Message("assistant", self.parts)


# -- streaming -------------------------------------------------------------------------------


@dataclass(slots=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of reasoning text."""

    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call as it streams in (informational; the final response is whole)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | ModelResponse
"""What :meth:`Model.stream` yields: deltas, then exactly one :class:`ModelResponse` last."""


class Model:
    """Base class of models. Subclasses implement :meth:`request` and/or :meth:`stream`.

    ``supports_native_output`` says whether the model takes a JSON schema for its answer
    (``OutputSpec.mode == "native"``); otherwise the agent uses a final-result tool.
    """

    provider: str = "unknown"
    model_name: str = "unknown"
    supports_native_output: bool = False
    supports_tools: bool = True

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer at once. The default drains :meth:`stream`."""
        final: ModelResponse | None = None
        async for event in self.stream(request):
            if isinstance(event, ModelResponse):
                final = event
        if final is None:
            from ..errors import StreamInterrupted

            raise StreamInterrupted(
                "stream ended without a final response",
                provider=self.provider,
                model=self.model_name,
            )
        return final

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream deltas, then the complete :class:`ModelResponse`. The default calls
        :meth:`request` and replays its text as one delta."""
        response = await self.request(request)
        if response.reasoning:
            yield ReasoningDelta(response.reasoning)
        if response.text:
            yield TextDelta(response.text)
        yield response

    @property
    def id(self) -> str:
        """``provider/model_name``."""
        return f"{self.provider}/{self.model_name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"
