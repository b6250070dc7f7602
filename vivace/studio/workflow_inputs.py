"""The input each step of a workflow run received, for the Studio's run history.

A run's journal keeps each step's *output*, not its input (an input is the previous output,
reshaped by maps and routed by conditions). So, as the engine does when it resumes a run, the
run's control flow is replayed over the recorded outputs - no step runs - and the value each
step was called with is noted. Maps and conditions are pure functions of their arguments (a
rule of workflows), so the replay sees what the run saw. Steps the run never reached have no
input.
"""

from __future__ import annotations

from typing import Any

from ..workflows.engine import Execution, execution_from, store_of
from ..workflows.nodes import Bailed, Cancelled, Parked
from ..workflows.steps import Step
from ..workflows.typecheck import from_json, to_jsonable

__all__ = ["step_inputs"]


class _Replay(Execution):
    """An execution that only reads the journal, noting each step's input."""

    __slots__ = ("inputs",)

    inputs: dict[str, Any]

    async def run_step(self, step: Step[Any, Any], value: Any, path: str) -> Any:
        self.inputs[path] = to_jsonable(value)
        rec = self.journal.get(path)
        if rec is None or rec.status != "completed":
            raise Parked([rec] if rec is not None else [])
        return from_json(step.output_type, rec.output)

    async def sleep(self, path: str, wake: float) -> None:
        rec = self.journal.get(path)
        if rec is None or rec.status != "completed":
            raise Parked([])

    async def wait_event(self, path: str, event: str, event_type: Any) -> Any:
        rec = self.journal.get(path)
        if rec is None or rec.status != "completed":
            raise Parked([])
        return from_json(event_type, rec.output) if event_type is not None else rec.output

    def skipped(self, path: str) -> None:
        return None


async def step_inputs(workflow: Any, run_id: str) -> dict[str, Any] | None:
    """``{step path: input}`` of a stored run (None: no such run, or no storage)."""
    store = store_of(workflow)
    if store is None:
        return None
    loaded = await store.load_run(run_id)
    if loaded is None:
        return None
    run, steps = loaded
    base = execution_from(workflow, run, steps, None, None, None)
    replay = _Replay.__new__(_Replay)
    for name in Execution.__slots__:
        if name != "__weakref__" and hasattr(base, name):
            setattr(replay, name, getattr(base, name))
    replay.inputs = {}
    value = base.input
    try:
        for node in workflow.nodes:
            value = await node.execute(replay, value, "")
    except (Parked, Bailed, Cancelled, Exception):  # the run went no further (or differs now)
        pass
    return replay.inputs
