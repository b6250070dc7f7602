"""OpenAI-compatible ``POST /v1/chat/completions`` (see :mod:`vivace.server.openai_compat`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import dumps, json_response
from ..openai_compat import (
    NO_RETRY,
    allowed_media,
    chat_parts,
    output_text,
    request_headers,
    run_error,
    start,
)
from ..routing import Op, parse_json
from ..schemas import ChatCompletionRequest
from ..streams import sse_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ROUTES"]

CHUNK_EVENT_SCHEMA: dict[str, Any] = {
    "description": "`data` is a chat.completion.chunk (or an error) as JSON, then `[DONE]`",
    "type": "object",
    "properties": {"data": {"type": "string"}},
    "required": ["data"],
}


async def chat_completions(request: Request) -> Response:
    req: ChatCompletionRequest = await parse_json(request, ChatCompletionRequest)
    allowed = allowed_media(request)
    items = [
        (m.role, chat_parts(m.content, f"messages.{i}.content", allowed))
        for i, m in enumerate(req.messages)
    ]
    settings = {
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_completion_tokens or req.max_tokens,
        "seed": req.seed,
    }
    run = await start(request, req.model, req.user, items, settings, bool(req.stream))
    cid = f"chatcmpl-{run.run_id}"
    created = int(time.time())
    headers = {**run.headers(), **NO_RETRY}
    if req.stream:
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        chunks = _chunks(run.events(), cid, created, req.model, include_usage, run.trace_id)
        return sse_response(chunks, headers)
    out = await run.outcome()
    if out["status"] != "completed":
        err = run_error(out)
        err.headers = {**headers, **(err.headers or {})}
        raise err
    u = out.get("usage") or {}
    i, o = int(u.get("input_tokens", 0)), int(u.get("output_tokens", 0))
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
                    "message": {"role": "assistant", "content": output_text(out), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
        },
        headers=headers,
    )


async def _chunks(
    events: AsyncIterator[dict[str, Any]],
    cid: str,
    created: int,
    model: str,
    usage: bool,
    trace_id: str | None = None,
) -> AsyncIterator[bytes]:
    """Chat completion chunks; each also names the run's ``trace_id`` (a field the
    OpenAI clients keep as an extra)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "trace_id": trace_id,
        }
        if usage:
            body["usage"] = None
        return b"data: " + dumps(body) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    async for event in events:
        t = event.get("type")
        if t == "text_delta":
            yield chunk({"content": event.get("text", "")})
        elif t == "run_completed":
            yield chunk({}, "stop")
            if usage:
                used = event.get("usage") or {}
                i, o = used.get("input_tokens", 0), used.get("output_tokens", 0)
                body = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
                    "trace_id": trace_id,
                }
                yield b"data: " + dumps(body) + b"\n\n"
        elif t in ("run_failed", "run_cancelled", "run_paused"):
            err = event.get("error") or {}
            message = err.get("message") or f"the run ended: {t}"
            error = {
                "message": message,
                "type": "server_error",
                "code": t,
                "param": None,
                "trace_id": trace_id,
            }
            yield b"data: " + dumps({"error": error}) + b"\n\n"
    yield b"data: [DONE]\n\n"


ROUTES = [
    Op(
        "POST",
        "/v1/chat/completions",
        chat_completions,
        "OpenAI-compatible chat completions (model = agent id)",
        "openai",
        body=ChatCompletionRequest,
        responses={
            200: {"type": "object"},
            **dict.fromkeys((400, 404, 409, 413, 415, 422, 502)),
        },
        headers=request_headers(),
        sse=CHUNK_EVENT_SCHEMA,
    ),
]
