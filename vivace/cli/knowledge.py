"""``vivace knowledge``: add content to a knowledge base (with a progress bar), search it,
list knowledge bases and documents, delete documents.

The store is ``--store`` or ``$VIVACE_KNOWLEDGE_URL`` (default
``sqlite:///.vivace/knowledge.db``); the embedder ``--embedder`` (default ``local``, the
offline all-MiniLM-L6-v2), the same one every time for one knowledge base.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

__all__ = ["add_parser", "knowledge"]


def add_parser(sub: Any) -> None:
    k = sub.add_parser("knowledge", help="add content to knowledge bases and search them")
    ksub = k.add_subparsers(dest="knowledge_command", metavar="command")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            default=None,
            help="knowledge store URL (default: $VIVACE_KNOWLEDGE_URL or sqlite:///.vivace/knowledge.db)",
        )
        p.add_argument(
            "--embedder", default="local", help='"local" or "provider/model" (default: local)'
        )

    a = ksub.add_parser(
        "add", help="add files, directories, globs and URLs (unchanged ones are skipped)"
    )
    a.add_argument("kb", help="knowledge base name")
    a.add_argument("paths", nargs="+", help="files, directories, glob patterns or http(s) URLs")
    a.add_argument("--glob", default="**/*", help="files to take from directories (default **/*)")
    a.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for every document (repeatable)",
    )
    a.add_argument(
        "--filter-field",
        action="append",
        default=[],
        metavar="NAME:TYPE",
        help="declare a filter field (str, int, float, bool)",
    )
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    common(a)

    s = ksub.add_parser("search", help="search a knowledge base")
    s.add_argument("kb")
    s.add_argument("query")
    s.add_argument("--top-k", type=int, default=5)
    s.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid")
    s.add_argument(
        "--filter", default=None, help='metadata filter as JSON, e.g. \'{"year": {"gte": 2024}}\''
    )
    s.add_argument("--json", action="store_true")
    common(s)

    ls = ksub.add_parser("list", help="list knowledge bases, or the documents of one")
    ls.add_argument("kb", nargs="?", default=None)
    ls.add_argument("--limit", type=int, default=100)
    common(ls)

    d = ksub.add_parser("delete", help="delete documents by source and/or metadata filter")
    d.add_argument("kb")
    d.add_argument("sources", nargs="*")
    d.add_argument("--filter", default=None, help="metadata filter as JSON")
    common(d)


def _kb(args: argparse.Namespace, filters: dict[str, Any] | None = None) -> Any:
    from ..knowledge import KnowledgeBase

    store = args.store or os.environ.get("VIVACE_KNOWLEDGE_URL") or None
    return KnowledgeBase(args.kb, store=store, embedder=args.embedder, filters=filters)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class _Bar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last = ""

    def __call__(self, p: Any) -> None:
        total = max(p.total, 1)
        width = 30
        filled = int(width * p.done / total)
        rate = p.chunks / max(time.perf_counter() - self.start, 1e-9)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} items, {p.chunks} chunks ({rate:.0f}/s)"
        if line == self.last:
            return
        self.last = line
        if self.tty:
            sys.stderr.write("\r" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")


def knowledge(args: argparse.Namespace) -> int:
    from ..errors import VivaceError

    cmd = getattr(args, "knowledge_command", None)
    if cmd is None:
        print("usage: vivace knowledge {add,search,list,delete} ... (see --help)", file=sys.stderr)
        return 2
    try:
        if cmd == "add":
            return _add(args)
        if cmd == "search":
            return _search(args)
        if cmd == "list":
            return _list(args)
        return _delete(args)
    except VivaceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


def _add(args: argparse.Namespace) -> int:
    meta = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --meta takes KEY=VALUE, not {item!r}", file=sys.stderr)
            return 2
        meta[key] = _value(value)
    fields = {}
    for item in args.filter_field:
        name, sep, kind = item.partition(":")
        if not sep:
            print(f"error: --filter-field takes NAME:TYPE, not {item!r}", file=sys.stderr)
            return 2
        fields[name] = kind
    kb = _kb(args, fields or None)
    bar = _Bar()
    try:
        report = kb.add(*args.paths, metadata=meta or None, glob=args.glob, on_progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for item in report.failed:
            assert item.error is not None
            print(
                f"failed: {item.source}: {item.error.message} ({item.error.code})", file=sys.stderr
            )
        print(
            f"{args.kb}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{len(report.failed)} failed; {report.chunks} chunks written"
        )
    return 1 if report.failed and not (report.added or report.updated or report.unchanged) else 0


def _search(args: argparse.Namespace) -> int:
    kb = _kb(args)
    filters = json.loads(args.filter) if args.filter else None
    hits = kb.search(args.query, top_k=args.top_k, mode=args.mode, filters=filters)
    if args.json:
        print(json.dumps([h.citation() for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
    for i, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        print(
            f"{i}. {h.source} #{h.position}  score {h.score:.4f}\n   {text[:300]}{'...' if len(text) > 300 else ''}"
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..agent.agent import run_sync
    from ..knowledge.stores import open_store

    store = open_store(args.store or os.environ.get("VIVACE_KNOWLEDGE_URL") or None)
    if args.kb is None:
        bases = run_sync(store.list_bases())
        if not bases:
            print("no knowledge bases")
        for b in bases:
            print(
                f"{b.name}  {b.documents} documents, {b.chunks} chunks, {b.dims} dims, embedder {b.embedder}"
            )
        return 0
    docs = run_sync(store.list_documents(args.kb, limit=args.limit))
    if not docs:
        print(f"no documents in {args.kb!r}")
    for d in docs:
        print(f"{d['source']}  {d['chunks']} chunks")
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not args.sources and not args.filter:
        print("error: give sources and/or --filter", file=sys.stderr)
        return 2
    kb = _kb(args)
    filters = json.loads(args.filter) if args.filter else None
    n = kb.delete(*args.sources, filters=filters)
    print(f"{n} documents deleted from {args.kb}")
    return 0
