"""Ingestion: items read, hashed, chunked, embedded and written, each item on its own.

An item that fails (unreadable, unsupported, empty, too large, a URL that cannot be
fetched) is reported with its typed error and the others go on; a document is written whole
(its chunks, vectors and full text in one transaction) or not at all. An unchanged document
(same content hash) writes nothing; a changed one replaces its old chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import VivaceError

__all__ = ["IngestProgress", "IngestReport", "ItemResult"]


@dataclass(slots=True)
class ItemResult:
    """What happened to one document or item: ``status`` is ``added``, ``updated``,
    ``unchanged`` or ``failed`` (with ``error``)."""

    source: str
    status: str
    chunks: int = 0
    error: VivaceError | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "status": self.status, "chunks": self.chunks}
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


@dataclass(slots=True)
class IngestReport:
    """The outcome of an ingest, per document (``items``) and in sum."""

    items: list[ItemResult] = field(default_factory=list)

    def _count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def added(self) -> int:
        return self._count("added")

    @property
    def updated(self) -> int:
        return self._count("updated")

    @property
    def unchanged(self) -> int:
        return self._count("unchanged")

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if i.status == "failed"]

    @property
    def chunks(self) -> int:
        """Chunks written."""
        return sum(i.chunks for i in self.items if i.status in ("added", "updated"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": len(self.failed),
            "chunks": self.chunks,
            "items": [i.to_dict() for i in self.items],
        }

    def __repr__(self) -> str:
        return (
            f"<IngestReport added={self.added} updated={self.updated} unchanged={self.unchanged} "
            f"failed={len(self.failed)} chunks={self.chunks}>"
        )


@dataclass(slots=True)
class IngestProgress:
    """Reported after each batch: items done of ``total`` (items given; a CSV counts once),
    chunks written so far, and the last item finished."""

    done: int
    total: int
    chunks: int
    source: str | None = None


ProgressCallback = Callable[[IngestProgress], Any]
