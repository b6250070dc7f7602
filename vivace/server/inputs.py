"""Turn HTTP run input (text, JSON content parts, multipart files) into message parts.

Media arrive as base64 ``data`` or an ``http(s)``/``data:`` URL - never a server path.
Invalid base64 is a 400; a media type outside the allowed set (or not matching the part's
kind) is a 415.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import HTTPError

if TYPE_CHECKING:
    from ..messages import Part

__all__ = [
    "DEFAULT_MEDIA_TYPES",
    "b64",
    "check_media",
    "media_allowed",
    "part_from_upload",
    "parts_from_json",
]

DEFAULT_MEDIA_TYPES: tuple[str, ...] = (
    "image/*",
    "audio/*",
    "video/*",
    "text/*",
    "application/pdf",
    "application/json",
    "application/octet-stream",
)
_KIND_PREFIX = {"image": "image/", "audio": "audio/", "video": "video/"}


def media_allowed(media_type: str, allowed: Sequence[str]) -> bool:
    mt = media_type.split(";", 1)[0].strip().lower()
    for pattern in allowed:
        if pattern.endswith("/*"):
            if mt.startswith(pattern[:-1]):
                return True
        elif mt == pattern:
            return True
    return False


def check_media(kind: str, media_type: str | None, allowed: Sequence[str], where: str) -> None:
    if media_type is None:
        return
    prefix = _KIND_PREFIX.get(kind)
    if prefix is not None and not media_type.lower().startswith(prefix):
        raise HTTPError(
            415,
            "unsupported_media_type",
            f"{where}: media type {media_type!r} is not an {kind} type",
            param=where,
        )
    if not media_allowed(media_type, allowed):
        raise HTTPError(
            415,
            "unsupported_media_type",
            f"{where}: media type {media_type!r} is not accepted",
            param=where,
        )


def b64(data: str, where: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(
            400, "invalid_base64", f"{where}: data is not valid base64", param=where
        ) from None


def parts_from_json(items: list[Any], allowed: Sequence[str]) -> list[Part]:
    """Validated ``TextIn``/``MediaIn`` models -> parts."""
    from ..messages import AudioPart, FilePart, ImagePart, TextPart, VideoPart

    classes: dict[str, Any] = {
        "image": ImagePart,
        "audio": AudioPart,
        "video": VideoPart,
        "file": FilePart,
    }
    parts: list[Part] = []
    for i, item in enumerate(items):
        where = f"input.{i}"
        if item.kind == "text":
            parts.append(TextPart(item.text))
            continue
        if (item.data is None) == (item.url is None):
            raise HTTPError(
                400, "invalid_part", f"{where}: give exactly one of data or url", param=where
            )
        media_type = item.media_type
        if item.data is not None:
            data: bytes | None = b64(item.data, where)
            url = None
        else:
            data, url = None, item.url
            assert url is not None
            scheme = url.split(":", 1)[0].lower() if ":" in url else ""
            if scheme not in ("http", "https", "data"):
                raise HTTPError(
                    400, "invalid_url", f"{where}: url must be http(s) or data:", param=where
                )
            if scheme == "data":
                header, sep, payload = url.partition(",")
                if not sep:
                    raise HTTPError(
                        400, "invalid_url", f"{where}: malformed data: URL", param=where
                    )
                if header.endswith(";base64"):
                    b64(payload, where)
                media_type = media_type or header[5:].split(";", 1)[0] or None
            elif media_type is None:  # a guess from the URL: only a hint, never a refusal
                guess = mimetypes.guess_type(url.split("?", 1)[0])[0]
                prefix = _KIND_PREFIX.get(item.kind)
                if guess is not None and (prefix is None or guess.startswith(prefix)):
                    media_type = guess if media_allowed(guess, allowed) else None
        check_media(item.kind, media_type, allowed, where)
        parts.append(classes[item.kind](data=data, url=url, media_type=media_type, name=item.name))
    return parts


def part_from_upload(
    filename: str | None, content_type: str | None, data: bytes, allowed: Sequence[str]
) -> Part:
    """A multipart upload -> the part for its media type."""
    from ..messages import AudioPart, FilePart, ImagePart, VideoPart

    media_type = content_type
    if not media_type or media_type == "application/octet-stream":
        # no declared type: the file name's type is only a hint, never a refusal
        guess = mimetypes.guess_type(filename)[0] if filename else None
        media_type = guess if guess is not None and media_allowed(guess, allowed) else None
    media_type = media_type or "application/octet-stream"
    where = f"files.{filename or 'file'}"
    check_media("file", media_type, allowed, where)
    top = media_type.split("/", 1)[0].lower()
    cls: Any = {"image": ImagePart, "audio": AudioPart, "video": VideoPart}.get(top, FilePart)
    return cls(data=data, media_type=media_type, name=filename)
