"""OpenAI-compatible ``POST /v1/responses`` (see :mod:`vivace.server.openai_compat`)."""

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
from ..schemas import ResponsesRequest
from ..streams import sse_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...messages import Part

__all__ = ["ROUTES"]

RESPONSE_EVENT_SCHEMA: dict[str, Any] = {
    "description": "`event` is the event type, `data` the event as JSON",
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "sequence_number": {"type": "integer", "minimum": 0},
                },
                "required": ["type", "sequence_number"],
            },
        },
    },
    "required": ["event", "data"],
}


async def responses(request: Request) -> Response:
    req: ResponsesRequest = await parse_json(request, ResponsesRequest)
    if isinstance(req.input, str):
        from ...messages import TextPart

        items: list[tuple[str, list[Part]]] = [("user", [TextPart(req.input)])]
    else:
        allowed = allowed_media(request)
        items = [
            (item.role, chat_parts(item.content, f"input.{i}.content", allowed))
            for i, item in enumerate(req.input)
        ]
    settings = {
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_output_tokens,
    }
    run = await start(request, req.model, req.user, items, settings, bool(req.stream))
    rid, mid = f"resp_{run.run_id}", f"msg_{run.run_id}"
    headers = {**run.headers(), **NO_RETRY}
    base = _response_base(rid, int(time.time()), req)
    if req.stream:
        return sse_response(_stream(run.events(), base, mid, run.trace_id), headers)
    out = await run.outcome()
    if out["status"] != "completed":
        err = run_error(out)
        err.headers = {**headers, **(err.headers or {})}
        raise err
    return json_response(
        _response_done(base, mid, output_text(out), out.get("usage") or {}), headers=headers
    )


async def _stream(
    events: AsyncIterator[dict[str, Any]],
    base: dict[str, Any],
    mid: str,
    trace_id: str | None = None,
) -> AsyncIterator[bytes]:
    """The Responses API's events; each also names the run's ``trace_id``."""
    seq = 0

    def ev(type_: str, **fields: Any) -> bytes:
        nonlocal seq
        body = {"type": type_, "sequence_number": seq, **fields, "trace_id": trace_id}
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
    async for event in events:
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


ROUTES = [
    Op(
        "POST",
        "/v1/responses",
        responses,
        "OpenAI-compatible Responses API (model = agent id)",
        "openai",
        body=ResponsesRequest,
        responses={
            200: {"type": "object"},
            **dict.fromkeys((400, 404, 409, 413, 415, 422, 502)),
        },
        headers=request_headers(),
        sse=RESPONSE_EVENT_SCHEMA,
    ),
]
