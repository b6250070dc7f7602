"""Sentence chunking, and semantic chunking (a new chunk where the topic changes)."""

from __future__ import annotations

import math
import re
from typing import Any

from ...errors import UserError
from ..documents import Chunk, Document
from .base import check_sizes, to_chunks

__all__ = ["SemanticChunker", "SentenceChunker", "sentence_spans"]

_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])[\"')\]]*\s+|\n\s*\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text`` (cut after ``.!?`` followed by space, and at blank
    lines)."""
    out = []
    pos = 0
    for m in _END.finditer(text):
        if m.end() > pos and text[pos : m.start()].strip():
            out.append((pos, m.end()))
            pos = m.end()
    if text[pos:].strip():
        out.append((pos, len(text)))
    return out


def _group(
    spans: list[tuple[int, int]], breaks: set[int], size: int, overlap: int
) -> list[tuple[int, int]]:
    """Sentences joined into chunks of at most ``size`` characters, starting a new chunk at
    each index in ``breaks``; each chunk after the first repeats its predecessor's last
    ``overlap`` sentences (when they fit)."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(spans)
    while i < n:
        start = spans[i][0]
        j = i
        while j + 1 < n and (j + 1) not in breaks and spans[j + 1][1] - start <= size:
            j += 1
        out.append((start, spans[j][1]))
        if j + 1 >= n:
            break
        k = j + 1
        if (j + 1) not in breaks:
            k = max(i + 1, j + 1 - overlap)
        i = k
    return out


class SentenceChunker:
    """Whole sentences up to ``size`` characters per chunk; ``overlap`` is a number of
    sentences repeated at the start of the next chunk. A sentence longer than ``size`` is
    a chunk of its own."""

    __slots__ = ("overlap", "size")

    def __init__(self, size: int = 1000, overlap: int = 1) -> None:
        check_sizes(size, 0)
        if overlap < 0:
            raise UserError("sentence overlap must be >= 0")
        self.size = size
        self.overlap = overlap

    def chunk(self, doc: Document) -> list[Chunk]:
        return to_chunks(doc, _group(sentence_spans(doc.text), set(), self.size, self.overlap))


class SemanticChunker:
    """Sentences grouped by meaning: each sentence is embedded, and a new chunk starts where
    the similarity of two neighbouring sentences falls below ``threshold`` (by default the
    ``percentile``-th percentile of the document's neighbour similarities), or where the
    chunk would pass ``size`` characters. ``chunk`` is async (it embeds)."""

    __slots__ = ("embedder", "percentile", "size", "threshold")

    def __init__(
        self,
        embedder: Any,
        *,
        size: int = 1500,
        threshold: float | None = None,
        percentile: float = 20.0,
    ) -> None:
        check_sizes(size, 0)
        if not 0 <= percentile <= 100:
            raise UserError("percentile must be between 0 and 100")
        self.embedder = embedder
        self.size = size
        self.threshold = threshold
        self.percentile = percentile

    async def chunk(self, doc: Document) -> list[Chunk]:
        from ..embedders import resolve

        spans = sentence_spans(doc.text)
        if len(spans) <= 1:
            return to_chunks(doc, spans)
        vecs = await resolve(self.embedder).embed([doc.text[s:e] for s, e in spans])
        sims = [_cos(vecs[i], vecs[i + 1]) for i in range(len(vecs) - 1)]
        cut = self.threshold
        if cut is None:
            ordered = sorted(sims)
            cut = ordered[min(len(ordered) - 1, int(len(ordered) * self.percentile / 100))]
        breaks = {i + 1 for i, s in enumerate(sims) if s < cut}
        return to_chunks(doc, _group(spans, breaks, self.size, 0))


def _cos(a: Any, b: Any) -> float:
    dot = sum(float(x) * float(y) for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(float(x) * float(x) for x in a))
    nb = math.sqrt(sum(float(y) * float(y) for y in b))
    return dot / (na * nb) if na and nb else 0.0
