"""A DBOS worker process for the DBOS engine tests.

Usage: ``python dbos_proc.py SPEC_JSON EXECUTOR_ID`` (SPEC as for ``proc.py`` plus
``"dbos_schema"``). Launches a DBOS worker for the ``flows.py`` workflows with
``engine="dbos"``, prints ``READY`` and serves until killed (or until stdin closes).
"""

from __future__ import annotations

import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flows import build
from proc import open_spec

from vivace.workflows.engines import dbos as vdbos


def main() -> None:
    spec = json.loads(sys.argv[1])
    executor_id = sys.argv[2]
    wfs = build(open_spec(spec), engine="dbos")
    vdbos.launch(
        list(wfs.values()),
        database_url=spec["url"],
        executor_id=executor_id,
        schema=spec["dbos_schema"],
        worker_concurrency=int(spec.get("worker_concurrency", 8)),
    )
    print("READY", flush=True)
    done = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the test closes our stdin
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    vdbos.shutdown()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    main()
