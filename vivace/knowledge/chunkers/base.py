"""What every chunker shares: spans over the document's text merged into sized windows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ...errors import UserError
from ..documents import Chunk, Document

__all__ = ["Chunker", "merge_spans", "recursive_windows", "split_recursive", "to_chunks"]

Span = tuple[int, int]


@runtime_checkable
class Chunker(Protocol):
    """Splits a document into chunks (``chunk`` may be async, e.g. when it embeds)."""

    def chunk(self, doc: Document) -> Any: ...


def check_sizes(size: int, overlap: int) -> None:
    if size < 1:
        raise UserError(f"chunk size must be at least 1, not {size}")
    if overlap < 0 or overlap >= size:
        raise UserError(
            f"chunk overlap must be >= 0 and smaller than the size ({size}), not {overlap}"
        )


def split_recursive(text: str, start: int, end: int, size: int, seps: Sequence[str]) -> list[Span]:
    """Spans covering ``text[start:end]``, each at most ``size`` long: split at the first
    separator of ``seps`` found (kept at the end of the piece before it), pieces still too
    long split with the next separators; ``""`` cuts hard."""
    if end - start <= size:
        return [(start, end)] if end > start else []
    for i, sep in enumerate(seps):
        if sep == "":
            return [(s, min(s + size, end)) for s in range(start, end, size)]
        if text.find(sep, start, end) < 0:
            continue
        out: list[Span] = []
        pos = start
        while pos < end:
            j = text.find(sep, pos, end)
            piece_end = end if j < 0 else j + len(sep)
            if piece_end - pos > size:
                out.extend(split_recursive(text, pos, piece_end, size, seps[i + 1 :]))
            else:
                out.append((pos, piece_end))
            pos = piece_end
        return out
    return [(s, min(s + size, end)) for s in range(start, end, size)]


def merge_spans(spans: Sequence[Span], size: int, overlap: int) -> list[Span]:
    """Consecutive spans joined into windows of at most ``size`` characters; each window
    after the first starts with up to ``overlap`` characters of whole spans of the one
    before."""
    out: list[Span] = []
    i, n = 0, len(spans)
    while i < n:
        start = spans[i][0]
        j = i
        while j + 1 < n and spans[j + 1][1] - start <= size:
            j += 1
        out.append((start, spans[j][1]))
        if j + 1 >= n:
            break
        # the next window starts with the last spans of this one that fit in ``overlap``
        k = j + 1
        while (
            k - 1 > i
            and spans[j][1] - spans[k - 1][0] <= overlap
            and spans[j + 1][1] - spans[k - 1][0] <= size
        ):
            k -= 1
        i = k
    return out


def recursive_windows(
    text: str, start: int, end: int, size: int, overlap: int, seps: Sequence[str]
) -> list[Span]:
    """Windows of at most ``size`` over ``text[start:end]``: split at the first separator of
    ``seps`` found; runs of pieces that fit are merged (with ``overlap``); a piece too long is
    windowed on its own with the next separators, so a window never mixes the end of one
    paragraph with words of a long one after it."""
    if end - start <= size:
        return [(start, end)] if end > start else []
    for i, sep in enumerate(seps):
        if sep == "":
            break
        if text.find(sep, start, end) < 0:
            continue
        out: list[Span] = []
        run: list[Span] = []
        pos = start
        while pos < end:
            j = text.find(sep, pos, end)
            piece_end = end if j < 0 else j + len(sep)
            if piece_end - pos > size:
                out += merge_spans(run, size, overlap)
                run = []
                out += recursive_windows(text, pos, piece_end, size, overlap, seps[i + 1 :])
            else:
                run.append((pos, piece_end))
            pos = piece_end
        return out + merge_spans(run, size, overlap)
    out = []
    s = start
    while True:  # no separator left: hard cuts, overlapping by ``overlap``
        e = min(s + size, end)
        out.append((s, e))
        if e >= end:
            return out
        s = e - overlap


def to_chunks(
    doc: Document, spans: Sequence[Span], extra: Sequence[dict[str, Any]] | None = None
) -> list[Chunk]:
    """Chunks for ``spans`` (whitespace trimmed, empty ones dropped), numbered from 0."""
    text = doc.text
    out: list[Chunk] = []
    for idx, (s, e) in enumerate(spans):
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e <= s:
            continue
        meta = dict(doc.metadata)
        if extra is not None and extra[idx]:
            meta.update(extra[idx])
        out.append(Chunk(doc.source, len(out), text[s:e], meta, s, e))
    return out
