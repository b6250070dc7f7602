"""PDF text with ``pypdf`` (the ``knowledge`` extra): one document, page offsets kept so
chunks know their page."""

from __future__ import annotations

import io

from ..documents import Document
from ..errors import UnreadableContent, missing

__all__ = ["read_pdf"]


def read_pdf(data: bytes, source: str, metadata: dict[str, object]) -> Document:
    try:
        import pypdf
        from pypdf.errors import PdfReadError
    except ImportError:
        raise missing("pypdf", "knowledge", "reading PDF files") from None
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = bool(reader.decrypt(""))
            except Exception:
                ok = False
            if not ok:
                raise UnreadableContent(
                    f"{source}: the PDF is encrypted (password protected)", source=source
                )
        parts: list[str] = []
        starts: list[int] = []
        offset = 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            starts.append(offset)
            parts.append(text)
            offset += len(text) + 2
    except UnreadableContent:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AssertionError) as exc:
        raise UnreadableContent(
            f"{source}: not a readable PDF ({type(exc).__name__}: {exc})", source=source
        ) from None
    except Exception as exc:  # pypdf raises many kinds on broken files
        raise UnreadableContent(
            f"{source}: not a readable PDF ({type(exc).__name__}: {exc})", source=source
        ) from None
    meta = dict(metadata)
    meta.setdefault("pages", len(parts))
    return Document(source, "\n\n".join(parts), meta, page_starts=starts)
