"""HTTP errors: every failure becomes a small JSON body, never a stack trace.

The body has the OpenAI error shape, so OpenAI clients understand it too, plus the trace of
the request (or run) it comes from::

    {"error": {"type": "not_found", "code": "agent_not_found", "message": "...", "param": null,
               "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}}
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from ..compact_json import compact_bytes_encoder
from ..trace_hook import TRACE_CONTEXT

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "HTTPError",
    "dumps",
    "error_response",
    "from_vivace_error",
    "install_handlers",
    "session_not_found",
]

logger = logging.getLogger("vivace.server")

TRACE_SCOPE_KEY = "vivace.trace"  # where TraceContext keeps the request's trace in the scope

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
}


class HTTPError(Exception):
    """Raise in a route to answer ``status`` with a JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.details = details
        self.headers = headers

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "type": _TYPES.get(self.status, "error"),
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if self.details is not None:
            err["details"] = self.details
        context = TRACE_CONTEXT.get()
        if context is not None:  # the request's (or run's) trace: its log lines carry it too
            err["trace_id"] = context[0]
        return {"error": err}


def _default(o: Any) -> Any:
    if isinstance(o, bytes | bytearray):
        return base64.b64encode(o).decode("ascii")
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


_encode = compact_bytes_encoder(_default)


def dumps(obj: Any) -> bytes:
    """Compact JSON (bytes as base64, unknown objects as strings)."""
    return _encode(obj)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import Response

    return Response(dumps(obj), status, headers=headers, media_type="application/json")


def error_response(err: HTTPError) -> Response:
    return json_response(err.body(), err.status, err.headers)


def session_not_found(session_id: str | None) -> HTTPError:
    """The one answer for a session that does not exist *or* belongs to someone else."""
    where = f" {session_id!r}" if session_id else ""
    return HTTPError(404, "session_not_found", f"no session{where}", param="session_id")


def from_vivace_error(exc: Exception) -> HTTPError:
    """The one mapping from typed Vivace errors to HTTP answers (raised anywhere in a route).

    ``InvalidIdentifier`` 400 (``param`` names the field), another user's session 404 (the
    same answer as for a session that does not exist), ``RunNotFound``/``NotFound`` 404,
    ``StateConflict``/``RunStateError`` 409, other ``UserError`` 400, ``StorageError`` 503.
    """
    from ..errors import InvalidIdentifier, NotFound, StorageError, UserError, VivaceError

    code = getattr(exc, "code", None)
    if isinstance(exc, InvalidIdentifier):
        return HTTPError(400, exc.code, _msg(exc), param=exc.field)
    if code == "session_ownership_error":
        return session_not_found(getattr(exc, "details", {}).get("session_id"))
    if code in ("state_conflict", "run_state_error"):
        return HTTPError(409, code, _msg(exc))
    if code in ("run_not_found", "not_found") or isinstance(exc, NotFound):
        return HTTPError(404, code or "not_found", _msg(exc))
    if code == "run_cancelled":
        return HTTPError(409, code, _msg(exc))
    if isinstance(exc, StorageError):
        logger.error("storage error: %s", exc)
        return HTTPError(503, "storage_unavailable", "the storage backend is unavailable")
    if isinstance(exc, UserError | VivaceError):
        return HTTPError(400, exc.code, _msg(exc))
    return HTTPError(500, "internal_error", "internal server error")


def _msg(exc: Exception) -> str:
    return getattr(exc, "message", None) or type(exc).__name__


def install_handlers(app: Any) -> None:
    """Register JSON handlers for HTTPError, typed Vivace errors (:func:`from_vivace_error`),
    Starlette's HTTPException and anything else (500, logged)."""
    from starlette.exceptions import HTTPException

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return error_response(exc)

    async def on_starlette(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        code = {404: "route_not_found", 405: "method_not_allowed"}.get(status, "http_error")
        message = {404: "no such route", 405: "method not allowed"}.get(
            status, str(exc.detail) if exc.detail else "error"
        )
        headers = dict(exc.headers) if exc.headers else None
        return error_response(HTTPError(status, code, message, headers=headers))

    async def on_vivace(request: Request, exc: Exception) -> Response:
        return error_response(from_vivace_error(exc))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # answered outside the middleware that set the request's trace context: set it again
        context = request.scope.get(TRACE_SCOPE_KEY)
        if context is not None and TRACE_CONTEXT.get() is None:
            TRACE_CONTEXT.set(context)
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(HTTPError(500, "internal_error", "internal server error"))

    from ..errors import VivaceError

    app.add_exception_handler(HTTPError, on_http_error)
    app.add_exception_handler(VivaceError, on_vivace)
    app.add_exception_handler(HTTPException, on_starlette)
    app.add_exception_handler(Exception, on_unexpected)
