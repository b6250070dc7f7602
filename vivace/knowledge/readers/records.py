"""Records (CSV rows, JSON objects) as documents: the text fields become the text, every
field becomes metadata."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..documents import Document
from ..errors import EmptyContent, UnreadableContent

__all__ = ["parse_csv", "parse_json", "records_to_documents"]


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


def records_to_documents(
    records: Iterable[Mapping[str, Any]],
    source: str,
    *,
    text_fields: Sequence[str] | None = None,
    id_field: str | None = None,
) -> list[Document]:
    """One document per record. Its text is ``text_fields`` (all string fields when None)
    as ``field: value`` lines; its source is ``source#<id_field value>`` (or ``#<index>``);
    its metadata are the record's scalar fields (nested values as JSON text)."""
    docs: list[Document] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise UnreadableContent(
                f"{source}: record {i} is a {type(rec).__name__}, not an object", source=source
            )
        fields = (
            list(text_fields) if text_fields else [k for k, v in rec.items() if isinstance(v, str)]
        )
        lines = []
        for k in fields:
            v = rec.get(k)
            if v is None or v == "":
                continue
            lines.append(f"{k}: {v}" if len(fields) > 1 else str(v))
        key = rec.get(id_field) if id_field else None
        rid = str(key) if key is not None and key != "" else str(i)
        meta = {str(k): _scalar(v) for k, v in rec.items()}
        docs.append(Document(f"{source}#{rid}", "\n".join(lines), meta))
    if not docs:
        raise EmptyContent(f"{source}: no records", source=source)
    return docs


def parse_csv(text: str, source: str) -> list[dict[str, Any]]:
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    except csv.Error as exc:
        raise UnreadableContent(
            f"{source}: not a readable CSV file ({exc})", source=source
        ) from None
    out = []
    for r in rows:
        if None in r:
            raise UnreadableContent(
                f"{source}: a row has more values than the header has columns", source=source
            )
        out.append({k: _number(v) for k, v in r.items()})
    return out


def _number(v: str | None) -> Any:
    if v is None:
        return None
    s = v.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        return v
    return f if s.lower() not in ("nan", "inf", "-inf", "infinity", "-infinity") else v


def parse_json(text: str, source: str, *, lines: bool = False) -> list[dict[str, Any]]:
    try:
        if lines:
            data: Any = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise UnreadableContent(f"{source}: not valid JSON ({exc})", source=source) from None
    if isinstance(data, dict):
        # {"items": [...]} or a single record
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise UnreadableContent(
            f"{source}: JSON must be an object or a list of objects", source=source
        )
    return data
