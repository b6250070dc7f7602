"""Readers: bytes, files, directories and URLs to :class:`~vivace.knowledge.Document`\\ s.

Text, Markdown, HTML, CSV and JSON need nothing beyond the standard library; PDF (``pypdf``)
and DOCX (``python-docx``) come with the ``knowledge`` extra and are imported on first use.
Each failure is a typed :class:`~vivace.knowledge.errors.IngestError` naming the item.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..documents import Document
from ..errors import (
    ContentTooLarge,
    EmptyContent,
    IngestError,
    UnreadableContent,
    UnsupportedContent,
)

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_MAX_BYTES",
    "SUFFIXES",
    "expand_paths",
    "kind_for",
    "read_bytes",
    "read_path",
]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Items larger than this (64 MiB) are refused with :class:`ContentTooLarge` unread."""

SUFFIXES = {
    ".txt": "text", ".text": "text", ".rst": "text", ".log": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf", ".docx": "docx",
    ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
}  # fmt: skip

CONTENT_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
}


def kind_for(source: str, filename: str | None = None, content_type: str | None = None) -> str:
    """The reader for a file name (by suffix) or a content type; raises
    :class:`UnsupportedContent`."""
    if filename:
        kind = SUFFIXES.get(Path(filename).suffix.lower())
        if kind:
            return kind
    if content_type:
        kind = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if kind:
            return kind
    what = Path(filename).suffix or filename if filename else content_type
    raise UnsupportedContent(
        f"{source}: unsupported file type {what or '(unknown)'!r}; supported: "
        + ", ".join(sorted(SUFFIXES)),
        source=source,
    )


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedContent(f"{source}: binary content is not text", source=source)
    for enc in ("utf-8-sig", "utf-16"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            if enc == "utf-8-sig" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
                break
    return data.decode("cp1252", errors="replace")


def read_bytes(
    data: bytes,
    source: str,
    *,
    kind: str | None = None,
    filename: str | None = None,
    content_type: str | None = None,
    metadata: dict[str, Any] | None = None,
    text_fields: Sequence[str] | None = None,
    id_field: str | None = None,
) -> list[Document]:
    """Documents from raw bytes (an uploaded or fetched file). ``kind`` (``text``,
    ``markdown``, ``html``, ``pdf``, ``docx``, ``csv``, ``json``, ``jsonl``) or else the
    file name's suffix or the content type picks the reader."""
    kind = kind or kind_for(source, filename, content_type)
    meta = dict(metadata or {})
    if not data.strip():
        raise EmptyContent(f"{source}: the content is empty", source=source)
    if kind == "pdf":
        from .pdf import read_pdf

        docs = [read_pdf(data, source, meta)]
    elif kind == "docx":
        from .docx import read_docx

        docs = [read_docx(data, source, meta)]
    else:
        text = _decode(data, source)
        if kind in ("text", "markdown"):
            docs = [Document(source, text, meta, markdown=kind == "markdown")]
        elif kind == "html":
            from .html import html_to_text

            body, title = html_to_text(text)
            if title:
                meta.setdefault("title", title)
            docs = [Document(source, body, meta, markdown=True)]
        elif kind in ("csv", "json", "jsonl"):
            from .records import parse_csv, parse_json, records_to_documents

            rows = (
                parse_csv(text, source)
                if kind == "csv"
                else parse_json(text, source, lines=kind == "jsonl")
            )
            docs = records_to_documents(rows, source, text_fields=text_fields, id_field=id_field)
            for d in docs:
                d.metadata = {**meta, **d.metadata}
        else:
            raise UnsupportedContent(f"{source}: unknown reader {kind!r}", source=source)
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise EmptyContent(f"{source}: no text could be extracted", source=source)
    return docs


def read_path(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    metadata: dict[str, Any] | None = None,
    text_fields: Sequence[str] | None = None,
    id_field: str | None = None,
    source: str | None = None,
) -> list[Document]:
    """Documents of one file (blocking: call it in a thread). The size is checked before
    anything is read."""
    p = Path(path)
    src = source or p.as_posix()
    kind = kind_for(src, p.name)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ContentTooLarge(
                f"{src}: {size} bytes is more than the limit of {max_bytes} bytes",
                source=src,
                size=size,
                max_bytes=max_bytes,
            )
        data = p.read_bytes()
    except IngestError:
        raise
    except FileNotFoundError:
        raise UnreadableContent(f"{src}: no such file", source=src) from None
    except OSError as exc:
        raise UnreadableContent(
            f"{src}: cannot read the file ({exc.strerror or exc})", source=src
        ) from None
    meta = {"file_name": p.name, **(metadata or {})}
    return read_bytes(
        data, src, kind=kind, metadata=meta, text_fields=text_fields, id_field=id_field
    )


def expand_paths(paths: Iterable[str | os.PathLike[str]], glob: str = "**/*") -> list[Path]:
    """Files named by ``paths``: files as they are, directories walked with ``glob`` (hidden
    files and folders skipped), shell patterns (``docs/*.md``) expanded. Sorted, no repeats."""
    out: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.glob(glob)):
                rel = f.relative_to(p).parts
                if f.is_file() and not any(part.startswith(".") for part in rel):
                    out.setdefault(f.as_posix(), f)
        elif p.exists() or not any(ch in str(raw) for ch in "*?["):
            out.setdefault(p.as_posix(), p)
        else:
            anchor = Path(p.anchor) if p.is_absolute() else Path()
            pattern = str(p.relative_to(anchor)) if p.is_absolute() else str(raw)
            for f in sorted(anchor.glob(pattern)):
                if f.is_file():
                    out.setdefault(f.as_posix(), f)
    return list(out.values())
