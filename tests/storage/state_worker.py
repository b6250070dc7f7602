"""A separate process running agent runs that change one session-state key concurrently.

Usage: ``python state_worker.py SPEC_JSON MODE RUNS``. Every run calls one tool that changes
``counter`` in the session ``shared``. ``MODE``:

- ``increment``: ``ctx.session_state.increment("counter")`` (an atomic update);
- ``plain``: ``ctx.session_state["counter"] = ctx.session_state.get("counter", 0) + 1``;
- ``plain-retry``: the same, run again while the run fails with ``StateConflict``.

Prints one JSON line: ``{"completed": n, "conflicts": n, "other": [...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from vivace import Agent, RunContext
from vivace.messages import Message
from vivace.storage import StateConflict
from vivace.testing import FunctionModel, call


def open_spec(spec: dict[str, Any]) -> Any:
    from vivace.storage import InMemoryStorage, PostgresStorage, SQLiteStorage

    if spec["kind"] == "sqlite":
        return SQLiteStorage(spec["path"])
    if spec["kind"] == "memory":
        return InMemoryStorage()
    return PostgresStorage(spec["url"], schema=spec["schema"])


def bump_once(messages: list[Message], request: Any) -> Any:
    """Calls the tool once, then answers."""
    return call("bump", {}) if messages[-1].role == "user" else "done"


def make_agent(storage: Any, mode: str) -> Agent:
    def bump(ctx: RunContext) -> int:
        """Add one to the counter."""
        if mode == "increment":
            return ctx.session_state.increment("counter")  # type: ignore[attr-defined, no-any-return]
        value = ctx.session_state.get("counter", 0) + 1
        ctx.session_state["counter"] = value
        return value  # type: ignore[no-any-return]

    return Agent(model=FunctionModel(bump_once), tools=[bump], storage=storage, name="counter")


async def run_many(storage: Any, mode: str, runs: int) -> dict[str, Any]:
    agent = make_agent(storage, mode)
    completed = conflicts = 0
    other: list[Any] = []
    for _ in range(runs):
        while True:
            result = await agent.arun("bump", session_id="shared", user_id="u1")
            if result.status == "completed":
                completed += 1
                break
            if isinstance(result.error, StateConflict):
                conflicts += 1
                if mode == "plain-retry":
                    continue
                break
            other.append(result.error.to_dict() if result.error else result.status)
            break
    return {"completed": completed, "conflicts": conflicts, "other": other}


async def main() -> None:
    spec = json.loads(sys.argv[1])
    mode, runs = sys.argv[2], int(sys.argv[3])
    storage = open_spec(spec)
    try:
        print(json.dumps(await run_many(storage, mode, runs)), flush=True)
    finally:
        await storage.close()


if __name__ == "__main__":
    asyncio.run(main())
