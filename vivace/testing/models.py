"""Deterministic models for tests: no network, same answer every time.

* :class:`ScriptedModel` plays back a list of turns.
* :class:`FunctionModel` computes each answer from the messages and tool definitions.
* :class:`EchoModel` repeats the last user text (the offline demo model).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..messages import Message, Part, ReasoningPart, TextPart, ToolCallPart
from ..models.base import (
    FinishReason,
    Model,
    ModelRequest,
    ModelResponse,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "EchoModel",
    "FunctionModel",
    "ScriptedModel",
    "Stream",
    "call",
    "reasoning",
    "test_model",
]

_ids = itertools.count(1)


def call(
    name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None
) -> ToolCallPart:
    """A tool call part for scripts: ``call("get_weather", {"city": "Paris"})``.

    ``arguments`` may be a JSON string, which is passed on as-is (use it to script malformed
    arguments).
    """
    args: Any = arguments if arguments is not None else {}
    if isinstance(args, dict):
        args = json.dumps(args)
    return ToolCallPart(id or f"call_{next(_ids)}", name, args)


def reasoning(text: str) -> ReasoningPart:
    """A reasoning part for scripts."""
    return ReasoningPart(text)


@dataclass(slots=True)
class Stream:
    """A turn delivered in chunks when streamed: ``Stream("Hel", "lo", call("f", {}))``."""

    chunks: Sequence[str | Part]

    def __init__(self, *chunks: str | Part) -> None:
        self.chunks = chunks


Turn = str | Part | Sequence[str | Part] | Stream | ModelResponse | BaseException


def _estimate_tokens(messages: Sequence[Message], instructions: str | None) -> int:
    n = len((instructions or "").split())
    for m in messages:
        for p in m.parts:
            if type(p) is TextPart:
                n += len(p.text.split())
            else:
                n += 4
    return n


def _response(
    parts: list[Part], request: ModelRequest, model: Model, finish: FinishReason | None = None
) -> ModelResponse:
    out_tokens = 0
    for p in parts:
        if type(p) is TextPart or type(p) is ReasoningPart:
            out_tokens += len(p.text.split())
        else:
            out_tokens += 4
    has_calls = any(type(p) is ToolCallPart for p in parts)
    return ModelResponse(
        parts=parts,
        usage=Usage(_estimate_tokens(request.messages, request.instructions), out_tokens),
        finish_reason=finish or ("tool_calls" if has_calls else "stop"),
        model_name=model.model_name,
        provider=model.provider,
    )


def _to_parts(value: Any) -> list[Part]:
    if isinstance(value, str):
        return [TextPart(value)]
    if isinstance(value, list | tuple):
        return [TextPart(v) if isinstance(v, str) else v for v in value]
    return [value]


def _merge_chunks(chunks: Sequence[str | Part]) -> list[Part]:
    parts: list[Part] = []
    for c in chunks:
        if isinstance(c, str):
            if parts and type(parts[-1]) is TextPart:
                parts[-1] = TextPart(parts[-1].text + c)
            else:
                parts.append(TextPart(c))
        else:
            parts.append(c)
    return parts


async def _stream_chunks(chunks: Sequence[str | Part]) -> AsyncIterator[StreamEvent]:
    index = 0
    for c in chunks:
        if isinstance(c, str):
            yield TextDelta(c)
        elif type(c) is ReasoningPart:
            yield ReasoningDelta(c.text)
        elif type(c) is ToolCallPart:
            yield ToolCallDelta(index, c.id, c.name, c.arguments_json())
            index += 1


def _word_chunks(parts: list[Part]) -> list[str | Part]:
    out: list[str | Part] = []
    for p in parts:
        if type(p) is TextPart:
            words = p.text.split(" ")
            out.extend(w if i == len(words) - 1 else w + " " for i, w in enumerate(words))
        else:
            out.append(p)
    return out


class ScriptedModel(Model):
    """Plays back ``turns`` in order, one per model request.

    A turn is text, a part (e.g. :func:`call`), a list of them, a :class:`Stream` (chunks when
    streamed), a complete :class:`~vivace.models.ModelResponse`, or an exception to raise.
    The script position is shared by all runs using this model; :meth:`reset` rewinds it.
    ``requests`` records every :class:`~vivace.models.ModelRequest` received.
    """

    provider = "test"

    def __init__(
        self,
        turns: Sequence[Turn],
        *,
        native_output: bool = True,
        model_name: str = "scripted",
    ) -> None:
        self.turns = list(turns)
        self.position = 0
        self.requests: list[ModelRequest] = []
        self.supports_native_output = native_output
        self.model_name = model_name

    def reset(self) -> None:
        self.position = 0
        self.requests.clear()

    def _next(self, request: ModelRequest) -> Turn:
        # a snapshot: the run keeps appending to the live message list
        self.requests.append(dataclasses.replace(request, messages=list(request.messages)))
        if self.position >= len(self.turns):
            from ..errors import UnexpectedModelBehavior

            raise UnexpectedModelBehavior(
                f"ScriptedModel has no turn left (played {len(self.turns)})"
            )
        turn = self.turns[self.position]
        self.position += 1
        if isinstance(turn, BaseException):
            raise turn
        return turn

    async def request(self, request: ModelRequest) -> ModelResponse:
        turn = self._next(request)
        if isinstance(turn, ModelResponse):
            return turn
        if isinstance(turn, Stream):
            return _response(_merge_chunks(turn.chunks), request, self)
        return _response(_to_parts(turn), request, self)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        turn = self._next(request)
        if isinstance(turn, ModelResponse):
            chunks: Sequence[str | Part] = _word_chunks(turn.parts)
            final = turn
        elif isinstance(turn, Stream):
            chunks = turn.chunks
            final = _response(_merge_chunks(chunks), request, self)
        else:
            parts = _to_parts(turn)
            chunks = _word_chunks(parts)
            final = _response(parts, request, self)
        for chunk in chunks:
            if isinstance(chunk, BaseException):
                raise chunk
        async for event in _stream_chunks(chunks):
            yield event
        yield final


ModelFunction = Callable[[list[Message], ModelRequest], Any]


class FunctionModel(Model):
    """Answers with ``function(messages, request)``, sync or async.

    The function returns text, a part, a list of parts, or a complete ModelResponse; it sees
    the tool definitions and output spec on ``request``. Streaming splits text into words.
    """

    provider = "test"

    def __init__(
        self,
        function: ModelFunction,
        *,
        native_output: bool = True,
        model_name: str | None = None,
    ) -> None:
        self.function = function
        self.supports_native_output = native_output
        self.model_name = model_name or str(getattr(function, "__name__", "function"))

    async def _call(self, request: ModelRequest) -> ModelResponse:
        value = self.function(request.messages, request)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, ModelResponse):
            return value
        return _response(_to_parts(value), request, self)

    async def request(self, request: ModelRequest) -> ModelResponse:
        return await self._call(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        response = await self._call(request)
        async for event in _stream_chunks(_word_chunks(response.parts)):
            yield event
        yield response


class EchoModel(FunctionModel):
    """Offline demo model: answers with the last user text, after calling no tools."""

    def __init__(self) -> None:
        super().__init__(_echo, native_output=False, model_name="echo")


def _echo(messages: list[Message], request: ModelRequest) -> str:
    for m in reversed(messages):
        if m.role == "user" and m.text:
            return f"echo: {m.text}"
    return "echo: (no text)"


_NAMED: dict[str, Callable[[], Model]] = {"echo": EchoModel}


def test_model(name: str) -> Model:
    """The model behind ``"test/<name>"`` model strings (offline, deterministic).

    ``"test/echo"`` answers with the last user text. Scripted and function models take
    arguments, so they are passed as objects: ``Agent(model=ScriptedModel([...]))``.
    """
    factory = _NAMED.get(name)
    if factory is None:
        from ..errors import ModelNotFoundError

        raise ModelNotFoundError(
            f"unknown test model {name!r}; known: {', '.join(sorted(_NAMED))} "
            "(pass ScriptedModel/FunctionModel objects for scripted answers)"
        )
    return factory()
