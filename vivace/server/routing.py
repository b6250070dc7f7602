"""Route tables: each :class:`Op` is both a Starlette route and an OpenAPI operation.

A route module (``vivace/server/routes/*.py``) declares ``ROUTES: list[Op]`` of module-level
handlers ``async def handler(request) -> Response``; :func:`starlette_routes` turns all of
them into Starlette routes (one per path, so a 405 lists every method of the path), checking
credentials and the op's scope before the handler runs (``state.principal(request)``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import HTTPError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import Response


__all__ = [
    "Delegate",
    "Doc",
    "Op",
    "Query",
    "parse_json",
    "query_int",
    "require_json",
    "sse_event",
    "starlette_routes",
]

Handler = Callable[["Request"], Awaitable["Response"]]


@dataclass(slots=True)
class Query:
    """A documented query parameter."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(slots=True)
class Doc:
    """A documented response whose body is not a pydantic model or the error shape: a JSON
    Schema per media type (an SSE schema describes one event's ``data``)."""

    content: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str | None = None


def sse_event(data: dict[str, Any], description: str = "") -> dict[str, Any]:
    """The OpenAPI schema of one server-sent event whose ``data`` is JSON matching ``data``."""
    return {
        "description": description or "one event: `data` is JSON",
        "type": "object",
        "properties": {
            "event": {"type": "string"},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        },
        "required": ["data"],
    }


class Delegate:
    """A "response" that hands the request to another ASGI app (e.g. a protocol SDK's
    transport): return it from a handler once credentials are checked. The app reads the
    request body itself."""

    __slots__ = ("app",)

    def __init__(self, app: Callable[[Any, Any, Any], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass(slots=True)
class Op:
    """One operation: method, path, handler, the scope it needs and what it documents."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    scope: str | None = "runs"  # None: public
    body: type[BaseModel] | None = None
    body_schema: dict[str, Any] | None = None  # a JSON request body described by a schema
    multipart: dict[str, Any] | None = None  # a JSON schema for multipart/form-data bodies
    responses: dict[int, Any] = field(default_factory=dict)  # status -> model | Doc | None
    query: list[Query] = field(default_factory=list)
    headers: list[Query] = field(default_factory=list)
    sse: dict[str, Any] | None = None  # 200 may also be text/event-stream: one event's schema
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_schema: bool = True  # False: served, but not in the OpenAPI document
    # the WWW-Authenticate challenge of a 401 on this op (e.g. naming MCP's resource metadata)
    challenge: Callable[[Request, str], str] | None = None

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def starlette_routes(ops: list[Op]) -> list[Any]:
    """One Starlette ``Route`` per path, dispatching on the method to the op's handler."""
    from starlette.routing import Route

    by_path: dict[str, dict[str, Op]] = {}
    for op in ops:
        methods = by_path.setdefault(op.path, {})
        if op.method in methods:
            raise ValueError(f"two routes for {op.method} {op.path}")
        methods[op.method] = op
    return [
        Route(path, _endpoint(methods), methods=list(methods), name=_name(methods))
        for path, methods in by_path.items()
    ]


def _name(methods: dict[str, Op]) -> str:
    return next(iter(methods.values())).handler.__name__


def _endpoint(methods: dict[str, Op]) -> Callable[[Request], Awaitable[Response]]:
    from .auth import check

    if "GET" in methods:
        methods = {**methods, "HEAD": methods["GET"]}

    async def endpoint(request: Request) -> Response:
        op = methods[request.method]
        if op.scope is not None:
            try:
                request.state.principal = check(request.app.state.auth, request, op.scope)
            except HTTPError as exc:
                if op.challenge is not None and exc.status == 401 and exc.headers:
                    given = exc.headers.get("WWW-Authenticate", "")
                    exc.headers = {**exc.headers, "WWW-Authenticate": op.challenge(request, given)}
                raise
        return await op.handler(request)

    return endpoint


def require_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "application/json").split(";", 1)[0].strip()
    if not (ctype == "application/json" or ctype.endswith("+json") or ctype == "text/json"):
        raise HTTPError(
            415, "unsupported_media_type", "send the body as application/json", param="content-type"
        )


async def parse_json(request: Request, model: type[BaseModel]) -> Any:
    """Read and validate a JSON body: 415 for another content type, 400 for bad JSON,
    422 for a body that does not match the schema."""
    from pydantic import ValidationError

    require_json(request)
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: Any) -> HTTPError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(e.get("type") == "json_invalid" for e in errors):
        return HTTPError(400, "invalid_json", "the body is not valid JSON")
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
        for e in errors[:20]
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"]) or "body"
    return HTTPError(
        422, "validation_error", f"{where}: {first['msg']}", param=where, details=details
    )


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(
            400, "invalid_parameter", f"{name} must be an integer", param=name
        ) from None
    if not lo <= value <= hi:
        raise HTTPError(
            400, "invalid_parameter", f"{name} must be between {lo} and {hi}", param=name
        )
    return value
