"""Fixed-size and recursive (by separators) chunking."""

from __future__ import annotations

from collections.abc import Sequence

from ..documents import Chunk, Document
from .base import check_sizes, merge_spans, recursive_windows, split_recursive, to_chunks

__all__ = ["FixedSizeChunker", "RecursiveChunker"]


class FixedSizeChunker:
    """Windows of at most ``size`` characters overlapping by about ``overlap``, cut at
    whitespace when there is any (a word longer than ``size`` is cut where it must be)."""

    __slots__ = ("overlap", "size")

    def __init__(self, size: int = 1000, overlap: int = 100) -> None:
        check_sizes(size, overlap)
        self.size = size
        self.overlap = overlap

    def chunk(self, doc: Document) -> list[Chunk]:
        spans = split_recursive(doc.text, 0, len(doc.text), max(1, self.size // 8), (" ", "\n", ""))
        return to_chunks(doc, merge_spans(spans, self.size, self.overlap))


class RecursiveChunker:
    """Split at paragraphs, then lines, then sentences, then words (``separators``), and
    join the pieces into chunks of at most ``size`` characters with ``overlap``."""

    __slots__ = ("overlap", "separators", "size")

    DEFAULT_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")

    def __init__(
        self, size: int = 1000, overlap: int = 100, separators: Sequence[str] | None = None
    ) -> None:
        check_sizes(size, overlap)
        self.size = size
        self.overlap = overlap
        self.separators = tuple(separators) if separators is not None else self.DEFAULT_SEPARATORS

    def chunk(self, doc: Document) -> list[Chunk]:
        windows = recursive_windows(
            doc.text, 0, len(doc.text), self.size, self.overlap, self.separators
        )
        return to_chunks(doc, windows)
