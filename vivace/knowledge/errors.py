"""Typed errors of knowledge bases: one per way an item of an ingest can fail.

Each names the item (``source``: a path, a URL or the id given) and the ingest goes on with
the next item; nothing of a failed item is written.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError

__all__ = [
    "ContentTooLarge",
    "EmptyContent",
    "FetchError",
    "IngestError",
    "InvalidFilter",
    "MissingExtra",
    "UnreadableContent",
    "UnsupportedContent",
]


class IngestError(UserError):
    """An item could not be added to a knowledge base; ``source`` names it."""

    code = "ingest_error"

    def __init__(self, message: str, *, source: str, **details: Any) -> None:
        super().__init__(message, source=source, **details)
        self.source = source


class UnsupportedContent(IngestError):
    """The file type or content type has no reader."""

    code = "unsupported_content"


class EmptyContent(IngestError):
    """The item has no text (an empty file, a scanned PDF without a text layer...)."""

    code = "empty_content"


class ContentTooLarge(IngestError):
    """The item is larger than the knowledge base's ``max_bytes``."""

    code = "content_too_large"


class UnreadableContent(IngestError):
    """The item is corrupt, encrypted or not what its name says (a PDF that is not one, a
    password-protected PDF, a CSV that does not parse...)."""

    code = "unreadable_content"


class FetchError(IngestError):
    """A URL could not be fetched (connection error, HTTP error status, timeout, too large)."""

    code = "fetch_error"


class InvalidFilter(UserError):
    """A search or delete filter names a field the knowledge base does not declare, or has a
    value of the wrong type or an unknown operator."""

    code = "invalid_filter"


class MissingExtra(UserError):
    """An optional dependency is not installed; the message names the extra to install."""

    code = "missing_extra"


def missing(module: str, extra: str, what: str) -> MissingExtra:
    return MissingExtra(
        f"{what} needs the {module!r} package: pip install 'vivace[{extra}]'",
        module=module,
        extra=extra,
    )
