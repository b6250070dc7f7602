"""The Studio's first load and streaming latency in headless Chromium (Debian's).

    python benchmarks/bench_studio.py

- first load of /studio: bytes transferred (all responses) and time to interactive (navigation
  start until the agent list is loaded and the composer is usable), median of 10 cold loads;
- text-delta latency: the model stamps each delta with the server's clock when it is
  produced; a MutationObserver notes when the text appears on the page (same machine clock):
  median and p95 over 5 runs x 20 deltas.

``--profile`` runs the server (its own process) under cProfile (CPU time) and prints its top
functions when it exits: its whole life after the app's import (start-up, loads and runs).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import PROFILE_ENV

REPO = Path(__file__).resolve().parents[1]

# --profile: the same uvicorn command line, run by uvicorn.main under ``profiled`` (CPU time:
# the server idles most of the time), which prints as the server exits (uvicorn re-raises the
# SIGTERM it shut down on to the handler it found: here one that exits through Python)
PROFILED_UVICORN = (
    "import signal, sys, uvicorn, _studio_bench_app; from _common import profiled; "
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "profiled(uvicorn.main, 'studio server (uvicorn + VivaceApp + Studio), all requests', cpu=True)"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile of the server process (top functions) when it exits",
    )
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        [
            sys.executable,
            *(["-c", PROFILED_UVICORN] if args.profile else ["-m", "uvicorn"]),
            "_studio_bench_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).parent,
        env={"PYTHONPATH": f"{REPO}:{Path(__file__).parent}", "PATH": "/usr/bin:/bin"}
        | ({PROFILE_ENV: "1"} if args.profile else {}),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/studio", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            sizes, ttis = [], []
            for _ in range(10):
                ctx = browser.new_context()
                page = ctx.new_page()
                total = [0]
                page.on(
                    "response",
                    lambda r, total=total: total.__setitem__(
                        0, total[0] + int(r.headers.get("content-length") or 0)
                    ),
                )
                page.goto(base + "/studio#/agents/clock/s-bench")
                page.wait_for_selector("#agent-select option", state="attached")
                page.wait_for_selector("#composer:enabled")
                ttis.append(page.evaluate("performance.now()"))
                page.wait_for_load_state("networkidle")
                sizes.append(total[0])
                ctx.close()
            lat: list[float] = []
            page = browser.new_page()
            page.goto(base + "/studio#/agents/clock/s-lat")
            page.wait_for_selector("#composer:enabled")
            for i in range(5):
                page.evaluate(
                    """() => { window.__lat = []; const seen = (window.__seen ||= new Set());
                    new MutationObserver(() => { const now = Date.now();
                      for (const m of document.body.innerText.matchAll(/<([0-9.]+)>/g)) {
                        if (!seen.has(m[1])) { seen.add(m[1]); window.__lat.push(now - parseFloat(m[1])); } } })
                    .observe(document.getElementById('chat'), {subtree: true, childList: true, characterData: true}); }"""
                )
                page.fill("#composer", f"go {i}")
                page.click("#send")
                page.wait_for_function("window.__lat.length >= 20", timeout=20000)
                lat += page.evaluate("window.__lat")
                page.wait_for_selector(f".msg.assistant.completed >> nth={i}")
            browser.close()
    finally:
        proc.terminate()
        if args.profile:  # its profile is printed as it exits
            proc.wait(60)
    lat.sort()
    out = {
        "first_load_bytes": statistics.median(sizes),
        "time_to_interactive_ms": statistics.median(ttis),
        "delta_latency_p50_ms": statistics.median(lat),
        "delta_latency_p95_ms": lat[int(len(lat) * 0.95) - 1],
        "deltas": len(lat),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
