"""A separate OS process that starts, resumes or recovers the workflows of ``flows.py``.

Usage: ``python proc.py SPEC_JSON COMMAND ARGS...`` (SPEC: ``{"kind": "sqlite", "path": ...}``
or ``{"kind": "postgres", "url": ..., "schema": ...}``, plus optional ``"lease"``).

* ``start NAME RUN_ID INPUT_JSON`` - start a run; print its result as JSON.
* ``resume NAME RUN_ID STEP DATA_JSON [AT]`` - resume (at wall-clock time AT, to race
  another process); print the result, or ``{"error": code, ...}``.
* ``recover NAMES`` - wait until a run of these workflows can be recovered, recover it, print
  the results.
* ``schedule SECONDS`` - run a Worker with a every-second schedule for SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flows import build, log

from vivace.errors import VivaceError
from vivace.workflows import StepContext, Worker, Workflow, recover, step


def open_spec(spec: dict[str, Any]) -> Any:
    from vivace.storage import PostgresStorage, SQLiteStorage

    if spec["kind"] == "sqlite":
        return SQLiteStorage(spec["path"])
    return PostgresStorage(spec["url"], schema=spec["schema"])


def out(value: Any) -> None:
    print("RESULT " + json.dumps(value, default=str), flush=True)


async def main() -> None:
    spec = json.loads(sys.argv[1])
    command, args = sys.argv[2], sys.argv[3:]
    storage = open_spec(spec)
    wfs = build(storage, lease=float(spec.get("lease", 30.0)))
    if command == "start":
        name, run_id, data = args
        result = await wfs[name].arun(json.loads(data), run_id=run_id)
        out(result.to_dict())
    elif command == "resume":
        name, run_id, path, data = args[:4]
        if len(args) > 4:
            await asyncio.sleep(max(0.0, float(args[4]) - time.time()))
        try:
            result = await wfs[name].aresume(run_id, step=path or None, data=json.loads(data))
        except VivaceError as exc:
            out({"error": exc.code, "type": type(exc).__name__, **exc.details})
        else:
            out(result.to_dict())
    elif command == "recover":
        names = args[0].split(",")
        deadline = time.time() + 60
        while time.time() < deadline:
            results = await recover([wfs[n] for n in names])
            if results:
                out([r.to_dict() for r in results])
                break
            await asyncio.sleep(0.2)
        else:
            out({"error": "nothing to recover"})
    elif command == "schedule":
        seconds = float(args[0])

        @step
        def stamp(_: Any, ctx: StepContext) -> str:
            log(ctx)
            return ctx.run_id

        wf = Workflow("every_second", storage=storage, schedule="* * * * * *").then(stamp)
        async with Worker([wf], recover_every=60):
            print("READY", flush=True)
            await asyncio.sleep(seconds)
        out({"done": True})
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    asyncio.run(main())
