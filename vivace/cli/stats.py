"""``vivace stats``: runs, errors, tokens, cost and latency per agent, model and day, read
from the traces in storage (what ``vivace dev`` and tracing with a storage exporter write)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

__all__ = ["parse_since", "stats"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BUCKETS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


def parse_since(text: str) -> float:
    """``"30m"``, ``"24h"``, ``"7d"`` -> seconds."""
    text = text.strip()
    try:
        return float(text[:-1]) * _UNITS[text[-1]] if text[-1] in _UNITS else float(text)
    except (ValueError, IndexError, KeyError):
        from ..errors import UserError

        raise UserError(f"--since must look like 30m, 24h or 7d, not {text!r}") from None


async def _rows(url: str, since: float, bucket: float, agent: str | None) -> list[dict[str, Any]]:
    from ..observability.query import TraceQueries
    from ..storage import shared_storage

    storage = shared_storage(url)
    setup = getattr(storage, "setup", None)
    if setup is not None:
        await setup()
    try:
        return await TraceQueries(storage).metrics(since=since, bucket=bucket, agent=agent)
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            await close()


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def stats(args: Any) -> int:
    from ..errors import VivaceError
    from .serve import DEFAULT_STORAGE

    url = args.storage or os.environ.get("VIVACE_STORAGE_URL") or DEFAULT_STORAGE
    try:
        since = time.time() - parse_since(args.since)
        rows = asyncio.run(_rows(url, since, _BUCKETS[args.bucket], args.agent))
    except VivaceError as exc:
        print(f"vivace stats: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            f"no traced runs since {args.since} ago in {url} (run `vivace dev`, or configure "
            "tracing with a StorageExporter)"
        )
        return 0
    head = (
        "time",
        "agent",
        "model",
        "runs",
        "errors",
        "in tok",
        "out tok",
        "cached",
        "reason",
        "cost $",
        "run p50/p95/p99 ms",
        "model p95",
        "tool p95",
    )
    table = [head]
    fmt = "%Y-%m-%d %H:%M" if args.bucket != "day" else "%Y-%m-%d"
    for r in rows:
        table.append(
            (
                time.strftime(fmt, time.localtime(r["time"])),
                r["agent"] or r["workflow"] or "-",
                r["model"] or "-",
                str(r["runs"]),
                str(r["errors"]),
                str(r["input_tokens"]),
                str(r["output_tokens"]),
                str(r["cached_tokens"]),
                str(r["reasoning_tokens"]),
                f"{r['cost_usd']:.6f}",
                f"{_ms(r['run_p50_ms'])}/{_ms(r['run_p95_ms'])}/{_ms(r['run_p99_ms'])}",
                _ms(r["model_p95_ms"]),
                _ms(r["tool_p95_ms"]),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
