"""Markdown-aware chunking: sections under their headings, the heading path kept."""

from __future__ import annotations

import re
from typing import Any

from ..documents import Chunk, Document
from .base import check_sizes, recursive_windows, to_chunks
from .recursive import RecursiveChunker

__all__ = ["MarkdownChunker"]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_FENCE = re.compile(r"^(```|~~~)", re.M)


class MarkdownChunker:
    """One chunk per section (a heading and its text) when it fits in ``size`` characters,
    else the section split like :class:`RecursiveChunker`. Each chunk's metadata has
    ``headings``: the titles of the section and its parents (``["Install", "Linux"]``).
    Headings inside code fences are text. Documents that are not Markdown are chunked
    recursively."""

    __slots__ = ("overlap", "size")

    def __init__(self, size: int = 1000, overlap: int = 100) -> None:
        check_sizes(size, overlap)
        self.size = size
        self.overlap = overlap

    def chunk(self, doc: Document) -> list[Chunk]:
        text = doc.text
        fences = [m.start() for m in _FENCE.finditer(text)]

        def in_fence(pos: int) -> bool:
            return sum(1 for f in fences if f < pos) % 2 == 1

        heads = [m for m in _HEADING.finditer(text) if not in_fence(m.start())]
        if not heads:
            return RecursiveChunker(self.size, self.overlap).chunk(doc)
        bounds = [0, *[m.start() for m in heads], len(text)]
        path: list[tuple[int, str]] = []
        spans: list[tuple[int, int]] = []
        extra: list[dict[str, Any]] = []
        seps = RecursiveChunker.DEFAULT_SEPARATORS
        for i in range(len(bounds) - 1):
            s, e = bounds[i], bounds[i + 1]
            if i > 0:
                m = heads[i - 1]
                level = len(m.group(1))
                path = [p for p in path if p[0] < level] + [(level, m.group(2).strip())]
            if not text[s:e].strip():
                continue
            meta = {"headings": [t for _, t in path]} if path else {}
            for span in recursive_windows(text, s, e, self.size, self.overlap, seps):
                spans.append(span)
                extra.append(meta)
        return to_chunks(doc, spans, extra)
