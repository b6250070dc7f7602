"""Closed-loop HTTP load generator for ``bench_server.py`` (run as its own process).

::

    python benchmarks/_server_load.py --target vivace|agno|fake --url http://127.0.0.1:PORT \\
        --concurrency 64 --duration 10 --warmup 2

``concurrency`` workers share one ``httpx.AsyncClient`` (a keep-alive pool of that many
connections); each sends a request, waits for the whole answer, checks it, and sends the
next. Every run request uses a new session id (``bench-<pid>-<n>``) and the user
``bench-user``. Requests that complete during the first ``warmup`` seconds are checked but
not measured; after ``warmup + duration`` seconds no new request starts and the ones in
flight finish and are checked (not measured). Prints one JSON line: measured ``count``,
``rps`` (completed per second over the measured window), latency ``p50``/``p90``/``p99``/
``max`` (seconds), ``errors`` over *all* requests sent (warm-up and drain included) with
``error_samples``, and the CPU seconds this process used (its own overhead).

A request is a success only if the status is 200 and the JSON body is a completed run whose
final answer is :data:`ANSWER` (for ``fake``: a chat completion object).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
from typing import Any

ANSWER = "It is sunny in Paris."
PROMPT = "What is the weather in Paris?"
USER = "bench-user"


def _percentile(sorted_xs: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not sorted_xs:
        return float("nan")
    k = max(0, min(len(sorted_xs) - 1, round(q / 100 * len(sorted_xs) + 0.5) - 1))
    return sorted_xs[k]


def _check_vivace(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    data = json.loads(body)
    if data.get("status") != "completed" or data.get("output") != ANSWER:
        return f"not completed / wrong answer: {body[:300]!r}"
    return None


def _check_agno(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    data = json.loads(body)
    if str(data.get("status", "")).upper() != "COMPLETED" or data.get("content") != ANSWER:
        return f"not completed / wrong answer: {body[:300]!r}"
    return None


def _check_fake(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    if json.loads(body).get("object") != "chat.completion":
        return f"not a chat completion: {body[:200]!r}"
    return None


class _Conn:
    """One keep-alive HTTP/1.1 connection (a lean client: the load generator must cost far
    less CPU than the servers it drives; httpx's pool costs milliseconds per request at 64
    connections)."""

    __slots__ = ("host", "port", "reader", "writer")

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif "chunked" in headers.get("transfer-encoding", ""):
                parts = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        break
                    parts.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                body = b"".join(parts)
            else:
                body = await reader.read()
                self.close()
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, body
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _build(method: str, path: str, host: str, ctype: str, body: bytes) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {ctype}\r\n"
        f"content-length: {len(body)}\r\naccept: application/json\r\n"
        "user-agent: vivace-bench\r\n\r\n"
    ).encode() + body


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from urllib.parse import urlencode, urlsplit

    u = urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    netloc = f"{host}:{port}"
    pid = os.getpid()
    counter = 0
    target = args.target
    check = {"vivace": _check_vivace, "agno": _check_agno, "fake": _check_fake}[target]
    runs_path = f"/agents/{args.agent}/runs"

    def next_request() -> bytes:
        nonlocal counter
        counter += 1
        session = f"bench-{pid}-{counter}"
        if target == "vivace":
            body = {"input": PROMPT, "session_id": session, "user_id": USER, "stream": False}
            return _build("POST", runs_path, netloc, "application/json", json.dumps(body).encode())
        if target == "agno":  # AgentOS takes form fields
            form = {"message": PROMPT, "stream": "false", "session_id": session, "user_id": USER}
            return _build(
                "POST",
                runs_path,
                netloc,
                "application/x-www-form-urlencoded",
                urlencode(form).encode(),
            )
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
        return _build(
            "POST", "/v1/chat/completions", netloc, "application/json", json.dumps(body).encode()
        )

    latencies: list[float] = []
    errors = 0
    sent = 0
    samples: list[str] = []
    t0 = time.perf_counter()
    measure_from = t0 + args.warmup
    stop_at = measure_from + args.duration

    async def worker() -> None:
        nonlocal errors, sent
        conn = _Conn(host, port)
        try:
            while True:
                start = time.perf_counter()
                if start >= stop_at:
                    return
                sent += 1
                try:
                    status, body = await asyncio.wait_for(
                        conn.request(next_request()), args.timeout
                    )
                    problem = check(status, body)
                except Exception as exc:  # a failed request is counted, never fatal
                    problem = f"{type(exc).__name__}: {exc}"
                end = time.perf_counter()
                if problem is not None:
                    errors += 1
                    if len(samples) < 5:
                        samples.append(problem)
                elif start >= measure_from and end <= stop_at:
                    latencies.append(end - start)
        finally:
            conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "target": target,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "count": len(latencies),
        "rps": len(latencies) / args.duration,
        "p50": _percentile(latencies, 50),
        "p90": _percentile(latencies, 90),
        "p99": _percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
        "sent": sent,
        "errors": errors,
        "error_samples": samples,
        "loadgen_cpu_s": cpu,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", choices=["vivace", "agno", "fake"], required=True)
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--agent", default="weather")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    args = p.parse_args()
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    print(json.dumps(runner(run(args))), flush=True)


if __name__ == "__main__":
    main()
