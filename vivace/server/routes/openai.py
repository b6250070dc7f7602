"""OpenAI-compatible ``POST /v1/chat/completions`` and ``POST /v1/responses``.

``model`` is the agent id. The agent runs its own tools server-side; clients see the text.
Sessions: the ``X-Vivace-Session-Id`` header, else the ``user`` field (used as session and
user id). With a session, only the last user message is sent as input (the session's history
comes from storage); without one, the earlier user/assistant messages are the history.
System/developer messages are ignored: the agent has its own instructions.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError, dumps, json_response
from ..routing import Op, Query, parse_json
from ..schemas import ChatCompletionRequest, ResponsesRequest
from ..sse import RunInfo
from .agents import sse_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...messages import Message, Part
    from ..app import VivaceApp
    from ..auth import Principal

__all__ = ["operations"]

SESSION_HEADER = "x-vivace-session-id"


def _bad(message: str, param: str | None = None) -> HTTPError:
    return HTTPError(400, "invalid_request", message, param=param)


def _data_url_part(url: Any, kind: str, where: str, allowed: Sequence[str]) -> Part:
    from ..inputs import parts_from_json
    from ..schemas import MediaIn

    if not isinstance(url, str) or not url:
        raise _bad(f"{where}: url must be a non-empty string", where)
    return parts_from_json([MediaIn.model_validate({"kind": kind, "url": url})], allowed)[0]


def _chat_parts(content: Any, where: str, allowed: Sequence[str]) -> list[Part]:
    from ...messages import AudioPart, FilePart, TextPart
    from ..inputs import _b64, _check_media

    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    parts: list[Part] = []
    for i, item in enumerate(content):
        w = f"{where}.{i}"
        t = item.get("type")
        if t in ("text", "input_text", "output_text"):
            text = item.get("text")
            if not isinstance(text, str):
                raise _bad(f"{w}: text must be a string", w)
            parts.append(TextPart(text))
        elif t == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_data_url_part(url, "image", w, allowed))
        elif t == "input_image":
            parts.append(_data_url_part(item.get("image_url"), "image", w, allowed))
        elif t == "input_audio":
            audio = item.get("input_audio") or {}
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise _bad(f"{w}: input_audio.data must be base64 text", w)
            fmt = audio.get("format") or "wav"
            media_type = f"audio/{'mpeg' if fmt == 'mp3' else fmt}"
            _check_media("audio", media_type, allowed, w)
            parts.append(AudioPart(data=_b64(audio["data"], w), media_type=media_type))
        elif t in ("file", "input_file"):
            f = item.get("file", item) if t == "file" else item
            data = f.get("file_data") if isinstance(f, dict) else None
            if not isinstance(data, str):
                raise _bad(f"{w}: file_data is required", w)
            if data.startswith("data:"):
                parts.append(_data_url_part(data, "file", w, allowed))
            else:
                parts.append(FilePart(data=_b64(data, w), name=f.get("filename")))
        else:
            raise _bad(f"{w}: unsupported content type {t!r}", w)
    return parts


def _split(
    items: Sequence[tuple[str, list[Part]]], with_history: bool
) -> tuple[list[Part], list[Message]]:
    from ...messages import Message

    convo = [(role, parts) for role, parts in items if role in ("user", "assistant")]
    if not convo or convo[-1][0] != "user":
        raise _bad("the last message must be a user message", "messages")
    history: list[Message] = []
    if with_history:
        history = [Message(role, parts) for role, parts in convo[:-1] if parts]  # type: ignore[arg-type]
    return convo[-1][1], history


def operations(server: VivaceApp) -> list[Op]:
    allowed = server.allowed_media_types

    def _session(request: Request, user: str | None) -> str | None:
        sid = request.headers.get(SESSION_HEADER) or user
        if sid is not None and not (0 < len(sid) <= 256):
            raise _bad("the session id must be 1-256 characters", SESSION_HEADER)
        return sid

    def _start(
        request: Request,
        principal: Principal,
        agent_id: str,
        user: str | None,
        parts: list[Part],
        history: list[Message],
        settings: dict[str, Any],
        stream: bool,
    ) -> tuple[str, asyncio.Task[Any], str | None]:
        agent = server.agents.get(agent_id)
        if agent is None:
            raise HTTPError(404, "model_not_found", f"no agent {agent_id!r}", param="model")
        session_id = _session(request, user)
        user_id = principal.user_for(user if user is not None else None)
        run_id = uuid.uuid4().hex
        options: dict[str, Any] = {"run_id": run_id}
        if session_id is not None:
            options["session_id"] = session_id
        if user_id is not None:
            options["user_id"] = user_id
        if history:
            options["message_history"] = history
        settings = {k: v for k, v in settings.items() if v is not None}
        if settings:
            options["model_settings"] = settings
        run = agent.astream(parts, stream_model=stream, **options)
        task = server.runs.start(RunInfo(run_id, agent.id, user_id, session_id), run)
        return run_id, task, session_id

    def _fail(result: Any) -> HTTPError:
        status = result.status if result is not None else "failed"
        err = (result.error.to_dict() if result is not None and result.error else {}) or {}
        message = err.get("message") or f"the run ended with status {status}"
        if status == "blocked":
            return HTTPError(400, "guardrail_tripped", message)
        if status == "paused":
            return HTTPError(
                409,
                "run_paused",
                "the run is waiting for tool approval; resume it with "
                f"POST /agents/{{agent}}/runs/{result.run_id}/resume",
            )
        if status == "cancelled":
            return HTTPError(409, "run_cancelled", message)
        return HTTPError(502, err.get("code") or "run_failed", message)

    def _text(result: Any) -> str:
        from ...tools.tool import result_to_content

        out = result_to_content(result._output)
        if out is None:
            return ""
        return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)

    # -- chat completions -------------------------------------------------------------------------

    async def chat_completions(request: Request, principal: Principal) -> Response:
        req: ChatCompletionRequest = await parse_json(request, ChatCompletionRequest)
        with_history = not (request.headers.get(SESSION_HEADER) or req.user)
        items = [
            (m.role, _chat_parts(m.content, f"messages.{i}.content", allowed))
            for i, m in enumerate(req.messages)
        ]
        parts, history = _split(items, with_history)
        settings = {
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_completion_tokens or req.max_tokens,
            "seed": req.seed,
        }
        run_id, task, session_id = _start(
            request, principal, req.model, req.user, parts, history, settings, bool(req.stream)
        )
        cid = f"chatcmpl-{run_id}"
        created = int(time.time())
        headers = {"x-vivace-run-id": run_id}
        if session_id:
            headers["x-vivace-session-id"] = session_id
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return sse_response(
                _chat_stream(run_id, cid, created, req.model, include_usage), headers
            )
        result = await asyncio.shield(task)
        if result is None or result.status != "completed":
            raise _fail(result)
        u = result.usage
        return json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": _text(result), "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": u.input_tokens,
                    "completion_tokens": u.output_tokens,
                    "total_tokens": u.input_tokens + u.output_tokens,
                },
            },
            headers=headers,
        )

    async def _chat_stream(
        run_id: str, cid: str, created: int, model: str, include_usage: bool
    ) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            body: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                body["usage"] = None
            return b"data: " + dumps(body) + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        async for event in server.log.subscribe(run_id):
            t = event.get("type")
            if t == "text_delta":
                yield chunk({"content": event.get("text", "")})
            elif t == "run_completed":
                yield chunk({}, "stop")
                if include_usage:
                    usage = event.get("usage") or {}
                    i, o = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
                    body = {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": i,
                            "completion_tokens": o,
                            "total_tokens": i + o,
                        },
                    }
                    yield b"data: " + dumps(body) + b"\n\n"
            elif t in ("run_failed", "run_cancelled", "run_paused"):
                err = event.get("error") or {}
                message = err.get("message") or f"the run ended: {t}"
                yield (
                    b"data: "
                    + dumps(
                        {
                            "error": {
                                "message": message,
                                "type": "server_error",
                                "code": t,
                                "param": None,
                            }
                        }
                    )
                    + b"\n\n"
                )
        yield b"data: [DONE]\n\n"

    # -- responses --------------------------------------------------------------------------------

    async def responses(request: Request, principal: Principal) -> Response:
        req: ResponsesRequest = await parse_json(request, ResponsesRequest)
        with_history = not (request.headers.get(SESSION_HEADER) or req.user)
        if isinstance(req.input, str):
            from ...messages import TextPart

            items: list[tuple[str, list[Part]]] = [("user", [TextPart(req.input)])]
        else:
            items = []
            for i, item in enumerate(req.input):
                kind = item.get("type", "message")
                role = item.get("role")
                if kind != "message" or role not in ("user", "assistant", "system", "developer"):
                    raise _bad(f"input.{i}: only message items are supported", f"input.{i}")
                items.append(
                    (role, _chat_parts(item.get("content"), f"input.{i}.content", allowed))
                )
        parts, history = _split(items, with_history)
        settings = {
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_output_tokens,
        }
        run_id, task, session_id = _start(
            request, principal, req.model, req.user, parts, history, settings, bool(req.stream)
        )
        rid, mid = f"resp_{run_id}", f"msg_{run_id}"
        created = int(time.time())
        headers = {"x-vivace-run-id": run_id}
        if session_id:
            headers["x-vivace-session-id"] = session_id
        base = _response_base(rid, created, req)
        if req.stream:
            return sse_response(_responses_stream(run_id, base, mid), headers)
        result = await asyncio.shield(task)
        if result is None or result.status != "completed":
            raise _fail(result)
        return json_response(
            _response_done(base, mid, _text(result), result.usage.to_dict()), headers=headers
        )

    async def _responses_stream(
        run_id: str, base: dict[str, Any], mid: str
    ) -> AsyncIterator[bytes]:
        seq = 0

        def ev(type_: str, **fields: Any) -> bytes:
            nonlocal seq
            body = {"type": type_, "sequence_number": seq, **fields}
            seq += 1
            return b"event: " + type_.encode() + b"\ndata: " + dumps(body) + b"\n\n"

        yield ev("response.created", response=base)
        yield ev("response.in_progress", response=base)
        item = {
            "id": mid,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        yield ev("response.output_item.added", output_index=0, item=item)
        yield ev(
            "response.content_part.added",
            item_id=mid,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        )
        text: list[str] = []
        async for event in server.log.subscribe(run_id):
            t = event.get("type")
            if t == "text_delta":
                delta = event.get("text", "")
                text.append(delta)
                yield ev(
                    "response.output_text.delta",
                    item_id=mid,
                    output_index=0,
                    content_index=0,
                    delta=delta,
                    logprobs=[],
                )
            elif t == "run_completed":
                full = "".join(text)
                part = {"type": "output_text", "text": full, "annotations": []}
                yield ev(
                    "response.output_text.done",
                    item_id=mid,
                    output_index=0,
                    content_index=0,
                    text=full,
                    logprobs=[],
                )
                yield ev(
                    "response.content_part.done",
                    item_id=mid,
                    output_index=0,
                    content_index=0,
                    part=part,
                )
                done = _response_done(base, mid, full, event.get("usage") or {})
                yield ev("response.output_item.done", output_index=0, item=done["output"][0])
                yield ev("response.completed", response=done)
            elif t in ("run_failed", "run_cancelled", "run_paused"):
                err = event.get("error") or {}
                failed = {
                    **base,
                    "status": "failed",
                    "error": {
                        "code": "server_error",
                        "message": err.get("message") or f"the run ended: {t}",
                    },
                }
                yield ev("response.failed", response=failed)

    id_schema = {"type": "string", "minLength": 1, "maxLength": 256}
    errors = {400: None, 404: None, 409: None, 413: None, 415: None, 422: None, 502: None}
    session_header = Query(
        "X-Vivace-Session-Id", id_schema, "continue this session (history from storage)"
    )
    return [
        Op(
            "POST",
            "/v1/chat/completions",
            chat_completions,
            "OpenAI-compatible chat completions (model = agent id)",
            "openai",
            body=ChatCompletionRequest,
            responses={200: {"type": "object"}, **errors},
            headers=[session_header],
            sse=True,
        ),
        Op(
            "POST",
            "/v1/responses",
            responses,
            "OpenAI-compatible Responses API (model = agent id)",
            "openai",
            body=ResponsesRequest,
            responses={200: {"type": "object"}, **errors},
            headers=[session_header],
            sse=True,
        ),
    ]


def _response_base(rid: str, created: int, req: ResponsesRequest) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "model": req.model,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "tool_choice": "auto",
        "tools": [],
        "max_output_tokens": req.max_output_tokens,
        "previous_response_id": None,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": None,
        "user": req.user,
    }


def _response_done(
    base: dict[str, Any], mid: str, text: str, usage: dict[str, Any]
) -> dict[str, Any]:
    i, o = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {
        **base,
        "status": "completed",
        "output": [
            {
                "id": mid,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": i,
            "output_tokens": o,
            "total_tokens": i + o,
            "input_tokens_details": {"cached_tokens": int(usage.get("cached_tokens", 0))},
            "output_tokens_details": {"reasoning_tokens": int(usage.get("reasoning_tokens", 0))},
        },
    }
