"""What the OpenAI-compatible routes share: message content -> parts, the conversation ->
input and history, starting the run, and run outcomes -> OpenAI answers.

``model`` is the agent id. **Stateless by default**, like every OpenAI-compatible server: the
client's messages are the conversation (the last user message is the input, the user and
assistant messages before it the history). A conversation continues a stored session only
when the client names it in the ``X-Vivace-Session-Id`` header; then only the last user
message is sent and the history comes from storage. ``user`` is the user id (never a
session). System/developer messages are ignored: the agent has its own instructions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import HTTPError
from .ids import SESSION_HEADER, body_id, header_id
from .launch import launch
from .routing import Query
from .state import agent, principal, request_trace_id, settings

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..messages import Message, Part
    from .launch import StartedRun

__all__ = [
    "NO_RETRY",
    "SESSION_HEADER",
    "allowed_media",
    "chat_parts",
    "conversation",
    "output_text",
    "request_headers",
    "run_error",
    "start",
]

NO_RETRY = {"x-should-retry": "false"}
"""On every answer about a run that already ran: the official clients then never retry it."""


def _bad(message: str, param: str | None = None) -> HTTPError:
    return HTTPError(400, "invalid_request", message, param=param)


def _data_url_part(url: Any, kind: str, where: str, allowed: Sequence[str]) -> Part:
    from .inputs import parts_from_json
    from .schemas import MediaIn

    if not isinstance(url, str) or not url:
        raise _bad(f"{where}: url must be a non-empty string", where)
    return parts_from_json([MediaIn.model_validate({"kind": kind, "url": url})], allowed)[0]


def chat_parts(content: Any, where: str, allowed: Sequence[str]) -> list[Part]:
    """An OpenAI message ``content`` (text, or validated content parts) -> message parts."""
    from ..messages import AudioPart, FilePart, TextPart
    from .inputs import b64, check_media

    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    parts: list[Part] = []
    for i, item in enumerate(content):
        w = f"{where}.{i}"
        t = item.type
        if t in ("text", "input_text", "output_text"):
            parts.append(TextPart(item.text))
        elif t == "image_url":
            image = item.image_url
            parts.append(_data_url_part(getattr(image, "url", image), "image", w, allowed))
        elif t == "input_image":
            parts.append(_data_url_part(item.image_url, "image", w, allowed))
        elif t == "input_audio":
            audio = item.input_audio
            fmt = audio.format or "wav"
            media_type = f"audio/{'mpeg' if fmt == 'mp3' else fmt}"
            check_media("audio", media_type, allowed, w)
            parts.append(AudioPart(data=b64(audio.data, w), media_type=media_type))
        else:  # file / input_file
            f = item.file if t == "file" else item
            if f.file_data.startswith("data:"):
                parts.append(_data_url_part(f.file_data, "file", w, allowed))
            else:
                parts.append(FilePart(data=b64(f.file_data, w), name=f.filename))
    return parts


def conversation(
    items: Sequence[tuple[str, list[Part]]], with_history: bool
) -> tuple[list[Part], list[Message]]:
    """The input (the last user message) and the history (user and assistant messages before
    it; only ``with_history``). Messages after the last user message are not part of it."""
    from ..messages import Message

    convo = [(role, parts) for role, parts in items if role in ("user", "assistant")]
    last = max((i for i, (role, _) in enumerate(convo) if role == "user"), default=None)
    if last is None:  # the schema requires one; kept for bodies validated elsewhere
        raise _bad("the conversation has no user message", "messages")
    history: list[Message] = []
    if with_history:
        history = [Message(role, parts) for role, parts in convo[:last] if parts]  # type: ignore[arg-type]
    return convo[last][1], history


async def start(
    request: Request,
    model: str,
    user: str | None,
    items: Sequence[tuple[str, list[Part]]],
    settings_: dict[str, Any],
    stream: bool,
) -> StartedRun:
    """Start the run a chat/responses request asks for (or find the one it already started)."""
    a = agent(request, body_id("model", model) or "", param="model")
    session_id = header_id(request, SESSION_HEADER)
    parts, history = conversation(items, with_history=session_id is None)
    user_id = principal(request).user_for(body_id("user", user))
    options: dict[str, Any] = {}
    if session_id is not None:
        options["session_id"] = session_id
    if user_id is not None:
        options["user_id"] = user_id
    if history:
        options["message_history"] = history
    model_settings = {k: v for k, v in settings_.items() if v is not None}
    if model_settings:
        options["model_settings"] = model_settings
    trace_id = request_trace_id(request)
    if trace_id is not None:  # the run joins the request's trace
        options["trace_id"] = trace_id

    def input_message() -> dict[str, Any]:
        from ..messages import input_to_message

        return input_to_message(parts).to_dict()

    return await launch(
        request,
        a,
        user_id=user_id,
        session_id=session_id,
        body=await request.body(),
        input_message=input_message,
        make_stream=lambda run_id: a.astream(parts, stream_model=stream, run_id=run_id, **options),
    )


def request_headers() -> list[Query]:
    """The headers the OpenAI-compatible routes document."""
    from .schemas import ID_SCHEMA

    return [
        Query(
            "X-Vivace-Session-Id",
            ID_SCHEMA,
            "continue this stored session (percent-encoded UTF-8); without it the request is "
            "stateless: the messages sent are the conversation",
        ),
        Query(
            "Idempotency-Key",
            ID_SCHEMA,
            "the same key (same credentials) always means the same run: never a second one",
        ),
    ]


def allowed_media(request: Request) -> tuple[str, ...]:
    return settings(request).allowed_media_types


def run_error(out: dict[str, Any]) -> HTTPError:
    """The error answer for a run that did not complete. The run already ran, so the answer
    tells clients not to retry (``x-should-retry: false``)."""
    status = out.get("status") or "failed"
    err = out.get("error") or {}
    message = err.get("message") or f"the run ended with status {status}"
    if status == "blocked":
        return HTTPError(400, "guardrail_tripped", message, headers=NO_RETRY)
    if status == "paused":
        return HTTPError(
            409,
            "run_paused",
            "the run is waiting for tool approval; resume it with "
            f"POST /agents/{{agent}}/runs/{out['run_id']}/resume",
            headers=NO_RETRY,
        )
    if status == "cancelled":
        return HTTPError(409, "run_cancelled", message, headers=NO_RETRY)
    return HTTPError(502, err.get("code") or "run_failed", message, headers=NO_RETRY)


def output_text(out: dict[str, Any]) -> str:
    """A completed run's output as text (JSON for structured output)."""
    value = out.get("output")
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
