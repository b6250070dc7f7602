"""Summarize a py-spy ``--format raw`` profile (collapsed stacks) of a server under load.

Used by ``bench_server.py --profile``; also runnable on its own::

    python benchmarks/_server_profile.py PROFILE.txt [--runs N] [--top 25]

Each sample is charged to a *bucket*: walking from the leaf frame towards the root, the first
frame that is not from the standard library decides it (so ``json.dumps`` called by the
storage layer counts as storage). Samples whose whole stack is standard library (the event
loop itself, thread pools) go to "event loop / stdlib". With ``--runs`` (runs completed
while sampling) and the sampling rate, shares are also given as CPU milliseconds per run.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

# (substring of the frame's file path, bucket) - first match wins
BUCKETS: list[tuple[str, str]] = [
    ("vivace/storage/", "storage: vivace.storage"),
    ("sqlalchemy/", "storage: SQLAlchemy"),
    ("httpcore/", "model HTTP client: httpx/httpcore/anyio"),
    ("httpx/", "model HTTP client: httpx/httpcore/anyio"),
    ("anyio/", "model HTTP client: httpx/httpcore/anyio"),
    ("h11/", "model HTTP client: httpx/httpcore/anyio"),
    ("vivace/models/", "model adapter: vivace.models"),
    ("vivace/agent/", "agent loop: vivace.agent"),
    ("vivace/tools/", "tools: vivace.tools"),
    ("vivace/messages/", "messages: vivace.messages"),
    ("vivace/server/", "server: vivace.server"),
    ("starlette/", "ASGI: uvicorn/starlette"),
    ("uvicorn/", "ASGI: uvicorn/starlette"),
    ("pydantic", "pydantic"),
    ("vivace/", "vivace (other)"),
    ("site-packages/", "other packages"),
    ("benchmarks/", "the tool itself (get_weather)"),
]
_FILE = re.compile(r"\((.*?):\d+\)$")


def _bucket(frames: list[str]) -> str:
    for f in reversed(frames):
        m = _FILE.search(f)
        path = m.group(1) if m else f
        for key, name in BUCKETS:
            if key in path:
                return name
    return "event loop / stdlib"


def _short(frame: str) -> str:
    frame = re.sub(r"\(/.*?site-packages/", "(", frame)
    return re.sub(r"\(/.*?/(vivace|benchmarks)/", r"(\1/", frame)


def summarize(path: Path, *, runs: int = 0, rate: int = 100, top: int = 25) -> str:
    buckets: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not stack:
            continue
        n = int(n_text)
        frames = [_short(f) for f in stack.split(";")[1:]]  # [0] is the thread
        total += n
        buckets[_bucket(frames)] += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples"
    per_run = (1000.0 / rate / runs) if runs else 0.0

    def fmt(n: int) -> str:
        extra = f"  {n * per_run:6.3f} ms/run" if per_run else ""
        return f"{n / total:6.1%}{extra}"

    out = [f"{total} samples at {rate} Hz" + (f", {runs} runs completed" if runs else "")]
    out.append("-- by layer (leaf-most non-stdlib frame)")
    out += [f"{fmt(n)}  {b}" for b, n in buckets.most_common()]
    out.append(f"-- top {top} functions by own time")
    out += [f"{fmt(n)}  {f}" for f, n in own.most_common(top)]
    out.append(f"-- top {top} vivace functions by inclusive time")
    viv = [(f, n) for f, n in incl.most_common() if "(vivace/" in f]
    out += [f"{fmt(n)}  {f}" for f, n in viv[:top]]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--runs", type=int, default=0, help="runs completed while sampling")
    p.add_argument("--rate", type=int, default=100, help="py-spy sampling rate (Hz)")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    print(summarize(args.profile, runs=args.runs, rate=args.rate, top=args.top))


if __name__ == "__main__":
    main()
