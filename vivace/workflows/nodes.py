"""The nodes a workflow is made of, and how each one runs.

A workflow is a list of nodes run in order; each node takes the previous node's output and
returns its own. Containers (``parallel``, ``branch``, loops, ``foreach``) hold steps (a
step may be a nested workflow). Every step execution has a path: its id, prefixed by its
nested workflow's path, with ``[i]`` for loop iterations and ``foreach`` items
(``outer.loop[3].inner.step``). Paths key the journal the engine replays on resume.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import WorkflowDefinitionError
from .steps import Step
from .typecheck import UNKNOWN, NamedOutputs

if TYPE_CHECKING:
    from .engine import Execution

__all__ = [
    "BranchNode",
    "ForeachNode",
    "LoopNode",
    "MapNode",
    "Node",
    "ParallelNode",
    "SleepNode",
    "StepNode",
    "WaitNode",
]


class Parked(Exception):
    """Internal: steps below this point are suspended or waiting (``records``)."""

    def __init__(self, records: list[Any]) -> None:
        super().__init__("parked")
        self.records = records


class Bailed(Exception):
    """Internal: a step ended the run early with ``output``."""

    def __init__(self, output: Any) -> None:
        super().__init__("bailed")
        self.output = output


class Cancelled(Exception):
    """Internal: a step cancelled the run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def join(prefix: str, segment: str) -> str:
    return segment if not prefix else f"{prefix}.{segment}"


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return 1
    return len(params)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Node:
    """One element of a workflow's sequence."""

    __slots__ = ("id", "input_type", "output_type")

    kind = "node"

    def __init__(self, id: str | None, input_type: Any, output_type: Any) -> None:
        self.id = id
        self.input_type = input_type
        self.output_type = output_type

    def segments(self) -> list[str]:
        """The path segments this node owns at its level (must be unique)."""
        return [self.id] if self.id else []

    def children(self) -> list[Step[Any, Any]]:
        return []

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        raise NotImplementedError


async def run_child(ex: Execution, step: Step[Any, Any], value: Any, path: str) -> Any:
    """Run a step (or a nested workflow) whose execution path is ``path``."""
    if step.kind == "workflow":
        for node in step.target.nodes:
            value = await node.execute(ex, value, path)
        return value
    return await ex.run_step(step, value, path)


class StepNode(Node):
    __slots__ = ("step",)

    kind = "step"

    def __init__(self, step: Step[Any, Any]) -> None:
        super().__init__(step.id, step.input_type, step.output_type)
        self.step = step

    def children(self) -> list[Step[Any, Any]]:
        return [self.step]

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        step = self.step
        path = step.id if not prefix else f"{prefix}.{step.id}"
        if step.kind == "workflow":
            for node in step.target.nodes:
                value = await node.execute(ex, value, path)
            return value
        return await ex.run_step(step, value, path)


async def _gather(ex: Execution, jobs: list[tuple[Step[Any, Any], Any, str]]) -> list[Any]:
    """Run ``jobs`` concurrently; wait for all; then raise the first failure, else the
    merged suspensions. Sync function steps run inline (they cannot overlap anyway)."""
    if all(s.kind == "function" and not s.is_async and s.timeout is None for s, _, _ in jobs) or (
        ex.dbos and any(s.kind == "workflow" for s, _, _ in jobs)
    ):  # on DBOS, steps must start in a fixed order: nested workflows run one by one
        results: list[Any] = []
        for s, v, p in jobs:
            try:
                results.append(await run_child(ex, s, v, p))
            except (Parked, Bailed, Cancelled, Exception) as exc:
                results.append(exc)
    else:
        results = list(
            await asyncio.gather(
                *(run_child(ex, s, v, p) for s, v, p in jobs), return_exceptions=True
            )
        )
    return _settle(results)


def _settle(results: list[Any]) -> list[Any]:
    parked: list[Any] = []
    signal: BaseException | None = None
    for r in results:
        if isinstance(r, Parked):
            parked.extend(r.records)
        elif isinstance(r, BaseException):
            if isinstance(r, Bailed | Cancelled):
                signal = signal or r
            else:
                raise r
    if signal is not None:
        raise signal
    if parked:
        raise Parked(parked)
    return results


class ParallelNode(Node):
    __slots__ = ("steps",)

    kind = "parallel"

    def __init__(self, steps: list[Step[Any, Any]], input_type: Any) -> None:
        super().__init__(
            None, input_type, NamedOutputs({s.id: s.output_type for s in steps}, False)
        )
        self.steps = steps

    def segments(self) -> list[str]:
        return [s.id for s in self.steps]

    def children(self) -> list[Step[Any, Any]]:
        return list(self.steps)

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        steps = self.steps
        outs = await _gather(ex, [(s, value, join(prefix, s.id)) for s in steps])
        return {s.id: o for s, o in zip(steps, outs, strict=True)}


class BranchNode(Node):
    """The first case whose condition is true runs; the others are skipped. Output:
    ``{step_id: output}`` of the case that ran (``{}`` when none did)."""

    __slots__ = ("arity", "cases")

    kind = "branch"

    def __init__(
        self, cases: list[tuple[Callable[..., Any], Step[Any, Any]]], input_type: Any
    ) -> None:
        super().__init__(
            None, input_type, NamedOutputs({s.id: s.output_type for _, s in cases}, True)
        )
        self.cases = cases
        self.arity = [_arity(c) for c, _ in cases]

    def segments(self) -> list[str]:
        return [s.id for _, s in self.cases]

    def children(self) -> list[Step[Any, Any]]:
        return [s for _, s in self.cases]

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        chosen = -1
        known = ex.prefixes
        if known:
            for i, (_, s) in enumerate(self.cases):
                if join(prefix, s.id) in known:
                    chosen = i
                    break
        if chosen < 0:
            for i, (cond, _) in enumerate(self.cases):
                ok = cond(value, ex.state) if self.arity[i] >= 2 else cond(value)
                if await _maybe_await(ok):
                    chosen = i
                    break
        for i, (_, s) in enumerate(self.cases):
            if i != chosen:
                ex.skipped(join(prefix, s.id))
        if chosen < 0:
            return {}
        s = self.cases[chosen][1]
        return {s.id: await run_child(ex, s, value, join(prefix, s.id))}


class LoopNode(Node):
    """``dowhile``/``dountil``: run the step, feed its output back as its input, and repeat
    while (``until=False``) / until (``until=True``) the condition holds."""

    __slots__ = ("arity", "condition", "max_iterations", "step", "until")

    kind = "loop"

    def __init__(
        self,
        step: Step[Any, Any],
        condition: Callable[..., Any],
        until: bool,
        id: str,
        max_iterations: int | None,
    ) -> None:
        super().__init__(id, step.input_type, step.output_type)
        self.step = step
        self.condition = condition
        self.until = until
        self.max_iterations = max_iterations
        self.arity = _arity(condition)

    def children(self) -> list[Step[Any, Any]]:
        return [self.step]

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        base = join(prefix, self.id or self.step.id)
        known = ex.prefixes
        i = 0
        while True:
            value = await run_child(ex, self.step, value, f"{base}[{i}]")
            i += 1
            if known and f"{base}[{i}]" in known:
                continue  # the journal says the loop went on
            if self.max_iterations is not None and i >= self.max_iterations:
                return value
            ok = self.condition(value, ex.state) if self.arity >= 2 else self.condition(value)
            ok = bool(await _maybe_await(ok))
            if ok == self.until:
                return value


class ForeachNode(Node):
    """Run the step once per item of the input list, ``concurrency`` at a time; the output
    is the list of outputs, in input order."""

    __slots__ = ("concurrency", "step")

    kind = "foreach"

    def __init__(self, step: Step[Any, Any], concurrency: int, id: str, input_type: Any) -> None:
        super().__init__(id, input_type, list[step.output_type])  # type: ignore[name-defined]
        self.step = step
        self.concurrency = max(1, concurrency)

    def children(self) -> list[Step[Any, Any]]:
        return [self.step]

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        base = join(prefix, self.id or self.step.id)
        items = list(value)
        n = len(items)
        out: list[Any] = [None] * n
        step = self.step
        if (
            (step.kind == "function" and not step.is_async and step.timeout is None)
            or self.concurrency == 1
            or (ex.dbos and step.kind == "workflow")
        ):
            for i in range(n):
                try:
                    out[i] = await run_child(ex, step, items[i], f"{base}[{i}]")
                except (Parked, Bailed, Cancelled, Exception) as exc:
                    out[i] = exc
            return _settle(out)
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < n:
                i = next_index
                next_index = i + 1
                try:
                    out[i] = await run_child(ex, step, items[i], f"{base}[{i}]")
                except (Parked, Bailed, Cancelled, Exception) as exc:
                    out[i] = exc

        workers = min(self.concurrency, n)
        if workers <= 1:
            await worker()
        else:
            await asyncio.gather(*(worker() for _ in range(workers)))
        return _settle(out)


class MapNode(Node):
    """Reshape the value between steps: ``fn(value)`` or ``fn(value, state)`` (not
    journaled: keep it a pure function of its arguments)."""

    __slots__ = ("arity", "fn")

    kind = "map"

    def __init__(self, fn: Callable[..., Any], input_type: Any, output_type: Any) -> None:
        super().__init__(None, input_type, output_type)
        self.fn = fn
        self.arity = _arity(fn)

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        out = self.fn(value, ex.state) if self.arity >= 2 else self.fn(value)
        return await _maybe_await(out)


class SleepNode(Node):
    """Wait ``seconds`` (or until a datetime); the value passes through. The wake-up time
    is journaled, so a recovered or resumed run sleeps only what is left."""

    __slots__ = ("seconds", "until")

    kind = "sleep"

    def __init__(
        self, id: str, seconds: float | None, until: datetime | None, input_type: Any
    ) -> None:
        super().__init__(id, input_type, input_type)
        self.seconds = seconds
        self.until = until

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        path = join(prefix, self.id or "sleep")
        rec = ex.journal.get(path) if ex.journal else None
        if rec is not None and rec.status == "completed":
            ex.replayed(rec)
            return value
        if rec is not None and isinstance(rec.payload, dict) and "until" in rec.payload:
            wake = float(rec.payload["until"])
        elif self.until is not None:
            until = self.until
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
            wake = until.timestamp()
        else:
            wake = time.time() + float(self.seconds or 0.0)
        await ex.sleep(path, wake)
        return value


class WaitNode(Node):
    """Park until an event named ``event`` is sent to the run
    (:meth:`~vivace.workflows.Workflow.send_event`); the output is the event's data."""

    __slots__ = ("event", "event_type")

    kind = "wait"

    def __init__(self, id: str, event: str, event_type: Any, input_type: Any) -> None:
        super().__init__(id, input_type, event_type if event_type is not None else UNKNOWN)
        self.event = event
        self.event_type = event_type

    async def execute(self, ex: Execution, value: Any, prefix: str) -> Any:
        return await ex.wait_event(join(prefix, self.id or self.event), self.event, self.event_type)


def check_unique(nodes: list[Node], where: str) -> None:
    seen: dict[str, str] = {}
    for node in nodes:
        for seg in node.segments():
            if seg in seen:
                raise WorkflowDefinitionError(
                    f"{where}: two steps have the id {seg!r}; give one another id "
                    "(step.with_id('...') or id=...)",
                    step=seg,
                )
            seen[seg] = node.kind
