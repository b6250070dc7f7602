"""The route table: each :class:`Op` is both a Starlette route and an OpenAPI operation."""

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

    from .auth import Principal

__all__ = ["Op", "Query", "parse_json", "query_int", "require_json"]

Handler = Callable[["Request", "Principal"], Awaitable["Response"]]


@dataclass(slots=True)
class Query:
    """A documented query parameter."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


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
    multipart: dict[str, Any] | None = None  # a JSON schema for multipart/form-data bodies
    responses: dict[int, Any] = field(default_factory=dict)  # status -> model | None
    query: list[Query] = field(default_factory=list)
    headers: list[Query] = field(default_factory=list)
    sse: bool = False  # 200 may also be text/event-stream
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


_JSON_TYPES = ("application/json", "application/", "text/json")


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
