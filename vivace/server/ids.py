"""Identifiers at the HTTP edge: decided once, before any run starts.

Any text a person can type is a valid id (Chinese, emoji, spaces, ``/``...); control
characters, NUL and unpaired surrogates are a 400 ``invalid_identifier`` naming the field
(:func:`vivace.identifiers.check_identifier`), wherever the id comes from: JSON bodies, form
fields, path and query parameters, headers.

Headers carry only Latin-1 text, so ids travel in headers **percent-encoded UTF-8**
(:func:`encode_header`): every byte outside printable ASCII, and ``%`` itself, becomes
``%XX``; printable ASCII ids without ``%`` are sent unchanged. Input headers are decoded the
same way (raw UTF-8 bytes are accepted too).

A ``/`` inside a path segment (sent as ``%2F``) stays inside the segment: :class:`SlashSafePaths`
keeps it from splitting the path, so ``/sessions/a%2Fb`` names the session ``a/b``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ..errors import InvalidIdentifier
from ..identifiers import check_identifier

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "SESSION_HEADER",
    "SlashSafePaths",
    "body_id",
    "decode_header",
    "encode_header",
    "header_id",
    "path_id",
    "query_id",
]

SESSION_HEADER = "x-vivace-session-id"

# printable ASCII that needs no encoding in a header value (everything but space and "%")
_SAFE = "!\"#$&'()*+,./:;<=>?@[\\]^_`{|}~-"


def encode_header(value: str) -> str:
    """``value`` as a header-safe string: percent-encoded UTF-8 (see the module docs)."""
    if value.isascii() and value.isprintable() and "%" not in value and " " not in value:
        return value
    return quote(value, safe=_SAFE)


def run_id_header(run_id: str) -> dict[str, str]:
    """The ``x-vivace-run-id`` header of a response about the run ``run_id``."""
    return {"x-vivace-run-id": encode_header(run_id)}


def decode_header(raw: str, field: str) -> str:
    """A header value -> the id it carries (percent-decoded UTF-8), checked."""
    if not raw.isascii():  # raw UTF-8 bytes (Starlette hands headers over as Latin-1)
        try:
            raw = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise InvalidIdentifier(
                f"{field} is not valid UTF-8 (percent-encode it)", field=field
            ) from None
    if "%" in raw:
        try:
            raw = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise InvalidIdentifier(
                f"{field} percent-encodes bytes that are not UTF-8", field=field
            ) from None
    return check_identifier(field, raw)


def header_id(request: Request, name: str) -> str | None:
    """The id in header ``name`` (decoded and checked; empty is a 400), or ``None``."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    return decode_header(raw, name)


def path_id(request: Request, name: str) -> str:
    """Path parameter ``name``, checked."""
    value = request.path_params[name]
    if request.scope.get("vivace.slash_safe"):  # segments were kept escaped: see SlashSafePaths
        value = unquote(value)
    return check_identifier(name, value)


def query_id(request: Request, name: str) -> str | None:
    """Query parameter ``name`` (checked; empty is a 400), or ``None`` when absent."""
    value = request.query_params.get(name)
    if value is None:
        return None
    return check_identifier(name, value)


def body_id(field: str, value: str | None) -> str | None:
    """An id from a JSON body or a form (``None`` passes), checked."""
    return None if value is None else check_identifier(field, value)


class SlashSafePaths:
    """ASGI middleware: an encoded ``/`` (``%2F``) in the request path stays part of its path
    segment instead of splitting the path, so ids with ``/`` work as path parameters.

    Servers decode ``%2F`` to ``/`` before routing; this re-derives the path from
    ``raw_path`` with ``/`` and ``%`` inside segments kept percent-encoded (``path_id``
    decodes them).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%2f" in raw.lower():
                scope = self._rewrite(scope, raw)
        await self.app(scope, receive, send)

    @staticmethod
    def _rewrite(scope: Any, raw: bytes) -> Any:
        text = raw.split(b"?", 1)[0].decode("latin-1")
        plain = unquote(text)
        kept = "/".join(
            unquote(segment).replace("%", "%25").replace("/", "%2F") for segment in text.split("/")
        )
        path = scope.get("path", "")
        if not path.endswith(plain):  # a server that rewrote the path: leave it alone
            return scope
        return {**scope, "path": path[: len(path) - len(plain)] + kept, "vivace.slash_safe": True}
