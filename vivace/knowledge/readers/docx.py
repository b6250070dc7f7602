"""DOCX text with ``python-docx`` (the ``knowledge`` extra): paragraphs, headings as
Markdown ``#`` lines, tables as ``a | b`` rows."""

from __future__ import annotations

import io

from ..documents import Document
from ..errors import UnreadableContent, missing

__all__ = ["read_docx"]


def read_docx(data: bytes, source: str, metadata: dict[str, object]) -> Document:
    try:
        import docx
    except ImportError:
        raise missing("python-docx", "knowledge", "reading DOCX files") from None
    try:
        d = docx.Document(io.BytesIO(data))
    except Exception as exc:  # a zip that is not a DOCX, a corrupt zip...
        raise UnreadableContent(
            f"{source}: not a readable DOCX file ({type(exc).__name__}: {exc})", source=source
        ) from None
    lines: list[str] = []
    for p in d.paragraphs:
        text = p.text.strip()
        if not text:
            continue
        style = (p.style.name if p.style is not None else "") or ""
        if style.startswith("Heading"):
            level = style.removeprefix("Heading").strip()
            n = int(level) if level.isdigit() else 1
            lines.append("#" * max(1, min(n, 6)) + " " + text)
        elif style == "Title":
            lines.append("# " + text)
        else:
            lines.append(text)
    for table in d.tables:
        for row in table.rows:
            lines.append(" | ".join(c.text.strip() for c in row.cells))
    meta = dict(metadata)
    title = d.core_properties.title
    if title:
        meta.setdefault("title", title)
    return Document(source, "\n\n".join(lines), meta, markdown=True)
