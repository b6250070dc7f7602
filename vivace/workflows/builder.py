"""The :class:`Workflow` builder and its run API.

.. code-block:: python

    wf = (
        Workflow("orders", input=Order, state=Totals)
        .then(validate)
        .parallel([price, stock])
        .map(lambda r: Quote(price=r["price"], stock=r["stock"]))
        .branch([(lambda q: q.price > 1000, approve), (lambda q: True, auto)])
        .dountil(poll, lambda status: status.done)
        .foreach(ship, concurrency=4)
    )
    result = await wf.arun(order)

Every builder call checks that the new step accepts the previous output (a
:class:`~vivace.workflows.errors.WorkflowTypeError` names both steps and both types).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import WorkflowDefinitionError, WorkflowTypeError
from .nodes import (
    BranchNode,
    ForeachNode,
    LoopNode,
    MapNode,
    Node,
    ParallelNode,
    SleepNode,
    StepNode,
    WaitNode,
    check_unique,
)
from .steps import Step
from .typecheck import UNKNOWN, NamedOutputs, accepts, accepts_arguments, type_name

if TYPE_CHECKING:
    from ..tools.toolset import SchemaTool
    from .engine import WorkflowStream
    from .result import WorkflowResult

__all__ = ["Workflow"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")


class Workflow(Generic[InT, OutT]):
    """A typed sequence of steps with control flow, run durably.

    Args:
        id: The workflow's id (its name in storage, the server and paths of nested runs).
        input: The input type (defaults to the first step's input type).
        output: The declared output type (checked against the last step when built).
        state: The shared-state type (a pydantic model or a dict type); each run starts from
            ``state()`` or the ``state=`` given to the run.
        storage: A :class:`~vivace.storage.Storage` or URL: every step is persisted there
            (``None``: runs live in this process only).
        engine: ``"local"`` (in-process, the default) or ``"dbos"`` (runs on DBOS workers;
            see :mod:`vivace.workflows.engines.dbos`).
        description: Shown by the server and the Studio.
        schedule: A cron expression (5 fields, or 6 with seconds first): ``vivace serve``
            starts a run at each tick (``schedule_input`` as its input).
        lease: Seconds a worker's claim on a running run lasts without renewal (crash
            detection; renewed every third of it).
    """

    __slots__ = (
        "_last",
        "_steps",
        "description",
        "engine",
        "id",
        "input_type",
        "lease",
        "nodes",
        "output_type",
        "schedule",
        "schedule_input",
        "state_type",
        "storage",
    )

    def __init__(
        self,
        id: str,
        *,
        input: Any = None,
        output: Any = None,
        state: Any = None,
        storage: Any = None,
        engine: str = "local",
        description: str | None = None,
        schedule: str | None = None,
        schedule_input: Any = None,
        lease: float = 30.0,
    ) -> None:
        from ..identifiers import check_identifier

        check_identifier("workflow", id)
        if any(c in id for c in ".[]"):
            raise WorkflowDefinitionError(f"workflow id {id!r}: '.', '[' and ']' are reserved")
        if engine not in ("local", "dbos"):
            raise WorkflowDefinitionError(f"unknown engine {engine!r} (use 'local' or 'dbos')")
        self.id = id
        self.input_type = input
        self.output_type = output
        self.state_type = state
        self.storage = storage
        self.engine = engine
        self.description = description
        self.nodes: list[Node] = []
        self._last: str | None = None
        self._steps: dict[str, Step[Any, Any]] | None = None
        self.schedule = schedule
        self.schedule_input = schedule_input
        self.lease = lease
        if schedule is not None:
            from .schedule import parse_cron

            parse_cron(schedule)

    # -- building ---------------------------------------------------------------------------

    @property
    def _out(self) -> Any:
        if self.nodes:
            return self.nodes[-1].output_type
        return self.input_type if self.input_type is not None else UNKNOWN

    def _check(self, target: Step[Any, Any], expected: Any, what: str = "input") -> None:
        source = self._out
        if self.nodes or self.input_type is not None:
            if target.kind == "tool":
                ok = accepts_arguments(target.target, source)
            else:
                ok = accepts(expected, source)
            if not ok:
                src = self._last or f"{self.id} (workflow input)"
                raise WorkflowTypeError(
                    f"workflow {self.id!r}: step {target.id!r} {what} is {type_name(expected)}, "
                    f"but {src!r} outputs {type_name(source)}",
                    source=src,
                    target=target.id,
                    source_type=type_name(source),
                    target_type=type_name(expected),
                )
        elif self.input_type is None and not self.nodes:
            self.input_type = expected

    def _step(self, item: Any) -> Step[Any, Any]:
        s = Step.of(item).resolve()
        st = s.state_type
        if (
            st is not None
            and s.kind != "workflow"
            and self.state_type is not None
            and not accepts(st, self.state_type)
        ):
            raise WorkflowTypeError(
                f"workflow {self.id!r}: step {s.id!r} expects state {type_name(st)}, but "
                f"the workflow's state is {type_name(self.state_type)}",
                source=self.id,
                target=s.id,
                source_type=type_name(self.state_type),
                target_type=type_name(st),
            )
        if s.kind == "workflow" and s.target is self:
            raise WorkflowDefinitionError(f"workflow {self.id!r} cannot contain itself")
        return s

    def _add(self, node: Node, last: str | None) -> Workflow[InT, Any]:
        check_unique([*self.nodes, node], f"workflow {self.id!r}")
        self.nodes.append(node)
        self._last = last
        self._steps = None
        return self

    def then(self, item: Any) -> Workflow[InT, Any]:
        """Run a step (a ``@step`` function, an Agent, a tool or a Workflow) next."""
        s = self._step(item)
        self._check(s, s.input_type)
        return self._add(StepNode(s), s.id)

    def parallel(self, items: Sequence[Any]) -> Workflow[InT, dict[str, Any]]:
        """Run steps at once on the same input; the output is ``{step_id: output}``."""
        steps = [self._step(i) for i in items]
        if not steps:
            raise WorkflowDefinitionError("parallel() needs at least one step")
        for s in steps:
            self._check(s, s.input_type)
        return self._add(
            ParallelNode(steps, self._out), "parallel(" + ", ".join(s.id for s in steps) + ")"
        )

    def branch(
        self, cases: Sequence[tuple[Callable[..., Any], Any]]
    ) -> Workflow[InT, dict[str, Any]]:
        """Run the first step whose condition ``cond(value)`` (or ``cond(value, state)``) is
        true; the output is ``{step_id: output}`` (``{}`` when none matched)."""
        built = [(cond, self._step(item)) for cond, item in cases]
        if not built:
            raise WorkflowDefinitionError("branch() needs at least one case")
        for cond, s in built:
            if not callable(cond):
                raise WorkflowDefinitionError(
                    f"branch(): the condition of {s.id!r} is not callable"
                )
            self._check(s, s.input_type)
        return self._add(
            BranchNode(built, self._out), "branch(" + ", ".join(s.id for _, s in built) + ")"
        )

    def _loop(
        self,
        item: Any,
        condition: Callable[..., Any],
        until: bool,
        id: str | None,
        max_iterations: int | None,
    ) -> Workflow[InT, Any]:
        s = self._step(item)
        self._check(s, s.input_type)
        if not accepts(s.input_type, s.output_type):
            raise WorkflowTypeError(
                f"workflow {self.id!r}: loop step {s.id!r} gets its own output back, but its "
                f"input is {type_name(s.input_type)} and its output {type_name(s.output_type)}",
                source=s.id,
                target=s.id,
                source_type=type_name(s.output_type),
                target_type=type_name(s.input_type),
            )
        return self._add(LoopNode(s, condition, until, id or s.id, max_iterations), s.id)

    def dowhile(
        self,
        item: Any,
        condition: Callable[..., Any],
        *,
        id: str | None = None,
        max_iterations: int | None = None,
    ) -> Workflow[InT, Any]:
        """Run the step, then again (on its own output) while ``condition(output)`` holds."""
        return self._loop(item, condition, False, id, max_iterations)

    def dountil(
        self,
        item: Any,
        condition: Callable[..., Any],
        *,
        id: str | None = None,
        max_iterations: int | None = None,
    ) -> Workflow[InT, Any]:
        """Run the step, then again (on its own output) until ``condition(output)`` holds."""
        return self._loop(item, condition, True, id, max_iterations)

    def foreach(
        self, item: Any, *, concurrency: int = 1, id: str | None = None
    ) -> Workflow[InT, list[Any]]:
        """Run the step on every item of the input list, ``concurrency`` at a time."""
        s = self._step(item)
        source = self._out
        item_type = _item_type(source)
        if item_type is None:
            src = self._last or f"{self.id} (workflow input)"
            raise WorkflowTypeError(
                f"workflow {self.id!r}: foreach({s.id!r}) needs a list, but {src!r} outputs "
                f"{type_name(source)}",
                source=src,
                target=s.id,
                source_type=type_name(source),
                target_type=f"list[{type_name(s.input_type)}]",
            )
        if not accepts(s.input_type, item_type):
            src = self._last or f"{self.id} (workflow input)"
            raise WorkflowTypeError(
                f"workflow {self.id!r}: foreach step {s.id!r} input is "
                f"{type_name(s.input_type)}, but the items of {src!r} are {type_name(item_type)}",
                source=src,
                target=s.id,
                source_type=type_name(source),
                target_type=type_name(s.input_type),
            )
        if self.input_type is None and not self.nodes:
            self.input_type = list[s.input_type]  # type: ignore[name-defined]
        return self._add(ForeachNode(s, concurrency, id or s.id, source), s.id)

    def map(self, fn: Callable[..., Any], *, output: Any = None) -> Workflow[InT, Any]:
        """Reshape the value: ``fn(value)`` or ``fn(value, state)``. Its return annotation
        (or ``output=``) is the new type; keep it pure (it is re-run on resume)."""
        if output is None:
            try:
                output = typing.get_type_hints(fn).get("return", UNKNOWN)
            except Exception:
                output = UNKNOWN
        return self._add(MapNode(fn, self._out, output), self._last)

    def sleep(self, seconds: float, *, id: str | None = None) -> Workflow[InT, Any]:
        """Pause the run for ``seconds`` (the value passes through)."""
        return self._add(
            SleepNode(id or self._auto_id("sleep"), seconds, None, self._out), self._last
        )

    def sleep_until(self, when: datetime, *, id: str | None = None) -> Workflow[InT, Any]:
        """Pause the run until ``when`` (naive datetimes are UTC)."""
        return self._add(SleepNode(id or self._auto_id("sleep"), None, when, self._out), self._last)

    def wait_for_event(
        self, event: str, *, type: Any = None, id: str | None = None
    ) -> Workflow[InT, Any]:
        """Park the run (status ``waiting``) until ``send_event(run_id, event, data)``; the
        output is ``data`` (validated as ``type``)."""
        node = WaitNode(id or self._auto_id(event), event, type, self._out)
        return self._add(node, node.id)

    def _auto_id(self, base: str) -> str:
        taken = {seg for n in self.nodes for seg in n.segments()}
        if base not in taken:
            return base
        i = 2
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    @property
    def steps(self) -> dict[str, Step[Any, Any]]:
        """Every step by its path pattern (``loop[].inner.step``), nested workflows included."""
        out = self._steps
        if out is None:
            out = {}
            _collect(self, "", out)
            self._steps = out
        return out

    def event_type(self, event: str) -> Any:
        """The data type of ``wait_for_event(event)`` nodes (None when untyped or unknown)."""
        for node in _walk(self):
            if isinstance(node, WaitNode) and node.event == event and node.event_type is not None:
                return node.event_type
        return None

    def find_step(self, path: str) -> Step[Any, Any] | None:
        """The step a run path (``outer.loop[3].step``) refers to, or None."""
        steps = self.steps
        found = steps.get(path)
        if found is not None or "[" not in path:
            return found
        import re

        return steps.get(re.sub(r"\[\d+\]", "[]", path))

    # -- running (see engine.py) ---------------------------------------------------------------

    async def arun(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        state: Any = None,
        deps: Any = None,
        user_id: str | None = None,
        parent_run_id: str | None = None,
        trace_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> WorkflowResult[OutT]:
        """Run to the end (or until it suspends) and return the result.

        On the DBOS engine the run is enqueued and executed by a worker: ``wait=False``
        returns at once (status ``running``); ``timeout`` bounds the wait.
        """
        from .engine import start_run

        return await start_run(
            self,
            input,
            run_id=run_id,
            state=state,
            deps=deps,
            user_id=user_id,
            parent_run_id=parent_run_id,
            trace_id=trace_id,
            wait=wait,
            timeout=timeout,
        )

    def run(self, input: Any = None, **options: Any) -> WorkflowResult[OutT]:
        """Synchronous :meth:`arun`."""
        from ..agent.agent import run_sync

        return run_sync(self.arun(input, **options))

    def astream(self, input: Any = None, **options: Any) -> WorkflowStream[OutT]:
        """Run and stream events (``async for event in wf.astream(x)``); ``.result`` at the
        end. Options as for :meth:`arun`."""
        from .engine import WorkflowStream, start_run

        return WorkflowStream(lambda emit: start_run(self, input, emit=emit, **options))

    def stream(self, input: Any = None, **options: Any) -> Any:
        """Synchronous :meth:`astream`: an iterator of events with ``result`` at the end."""
        from .engine import SyncWorkflowStream

        return SyncWorkflowStream(self.astream(input, **options))

    async def aresume(
        self,
        run_id: str,
        *,
        step: str | None = None,
        data: Any = None,
        deps: Any = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> WorkflowResult[OutT]:
        """Continue a suspended run: send ``data`` to the suspended step ``step`` (its path;
        optional when exactly one step is suspended). Works from any process that has this
        workflow and its storage. Exactly once per suspension: a second resume of the same
        step raises :class:`~vivace.workflows.errors.StepNotSuspended`."""
        from .engine import resume_run

        return await resume_run(self, run_id, step, data, deps=deps, wait=wait, timeout=timeout)

    def resume(self, run_id: str, **options: Any) -> WorkflowResult[OutT]:
        """Synchronous :meth:`aresume`."""
        from ..agent.agent import run_sync

        return run_sync(self.aresume(run_id, **options))

    def aresume_stream(
        self, run_id: str, *, step: str | None = None, data: Any = None, deps: Any = None
    ) -> WorkflowStream[OutT]:
        """Like :meth:`aresume`, streaming the continued run's events."""
        from .engine import WorkflowStream, resume_run

        return WorkflowStream(
            lambda emit: resume_run(self, run_id, step, data, deps=deps, emit=emit)
        )

    async def send_event(self, run_id: str, event: str, data: Any = None) -> WorkflowResult[OutT]:
        """Deliver ``event`` to the run's step waiting for it (``wait_for_event``), and
        continue the run here. Raises ``StepNotSuspended`` when nothing waits for it."""
        from .engine import resume_run

        return await resume_run(self, run_id, None, data, event=event)

    async def acancel(self, run_id: str) -> str | None:
        """Cancel a run: a parked run at once, a running one wherever it runs (its worker
        sees the request within a third of the lease). Returns the run's status after the
        request, or None for an unknown run."""
        from .engine import cancel_run

        return await cancel_run(self, run_id)

    def cancel(self, run_id: str) -> str | None:
        """Synchronous :meth:`acancel`."""
        from ..agent.agent import run_sync

        return run_sync(self.acancel(run_id))

    async def get_run(self, run_id: str) -> WorkflowResult[OutT] | None:
        """A stored (or in-process) run as a result: status, output, step results, state."""
        from .engine import load_result

        return await load_result(self, run_id)

    async def list_runs(
        self, *, status: str | Sequence[str] | None = None, limit: int = 50, offset: int = 0
    ) -> list[Any]:
        """This workflow's stored runs (``WorkflowRunRecord``), newest first."""
        from .engine import store_of

        store = store_of(self)
        if store is None:
            return []
        statuses = [status] if isinstance(status, str) else status
        return await store.list_runs(
            workflow=self.id, statuses=statuses, limit=limit, offset=offset
        )

    async def time_travel(
        self,
        run_id: str,
        *,
        step: str,
        input: Any = None,
        new_run_id: str | None = None,
    ) -> WorkflowResult[OutT]:
        """Re-run a finished (or failed, suspended) run from ``step`` as a new run linked to
        it (``origin_run_id``): every step that ended before ``step`` started keeps its
        recorded output; ``step`` and what follows run again. ``input`` overrides the input
        ``step`` receives."""
        from .engine import time_travel

        return await time_travel(self, run_id, step, input, new_run_id)

    def as_tool(self, *, name: str | None = None, description: str | None = None) -> SchemaTool:
        """This workflow as a tool an agent can call (the input type is the tool's schema).
        The run joins the calling agent's trace as its child."""
        from .tool import workflow_tool

        return workflow_tool(self, name=name, description=description)

    # -- graph ------------------------------------------------------------------------------

    def graph(self) -> dict[str, Any]:
        """Nodes and edges (with step kinds, JSON Schemas and nesting) for the Studio."""
        from .graph import build_graph

        return build_graph(self)

    def mermaid(self) -> str:
        """The workflow as a Mermaid flowchart."""
        from .graph import to_mermaid

        return to_mermaid(self)

    def describe(self) -> dict[str, Any]:
        """id, description and the JSON Schemas of input, output and state."""
        from .typecheck import json_schema

        return {
            "id": self.id,
            "description": self.description,
            "engine": self.engine,
            "schedule": self.schedule,
            "input_schema": json_schema(self.input_type or UNKNOWN),
            "output_schema": json_schema(self.final_output_type),
            "state_schema": json_schema(self.state_type or UNKNOWN),
            "steps": {p: s.describe() for p, s in self.steps.items()},
        }

    @property
    def final_output_type(self) -> Any:
        if self.output_type is not None:
            return self.output_type
        return self.nodes[-1].output_type if self.nodes else UNKNOWN

    def __repr__(self) -> str:
        return f"<Workflow {self.id} ({len(self.nodes)} nodes)>"


def _item_type(tp: Any) -> Any:
    if tp is Any:
        return Any
    if isinstance(tp, NamedOutputs):
        return None
    origin = typing.get_origin(tp) or tp
    import collections.abc as cabc

    if (
        isinstance(origin, type)
        and origin is not str
        and issubclass(origin, cabc.Iterable)
        and not issubclass(origin, cabc.Mapping)
    ):
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[0] if len(args) == 1 else (Any if not args else None)
    return None


def _walk(wf: Workflow[Any, Any]) -> list[Node]:
    out: list[Node] = []
    for node in wf.nodes:
        out.append(node)
        for s in node.children():
            if s.kind == "workflow":
                out.extend(_walk(s.target))
    return out


def _collect(wf: Workflow[Any, Any], prefix: str, out: dict[str, Step[Any, Any]]) -> None:
    for node in wf.nodes:
        looped = isinstance(node, LoopNode | ForeachNode)
        for s in node.children():
            if looped:
                seg = f"{node.id or s.id}[]"
                path = seg if not prefix else f"{prefix}.{seg}"
            else:
                path = s.id if not prefix else f"{prefix}.{s.id}"
            if s.kind == "workflow":
                out[path] = s
                _collect(s.target, path, out)
            else:
                out[path] = s
        if isinstance(node, WaitNode | SleepNode):
            seg = node.id or node.kind
            path = seg if not prefix else f"{prefix}.{seg}"
            out[path] = Step(
                None,
                id=node.id,
                kind="wait" if isinstance(node, WaitNode) else "sleep",
                resume=node.event_type if isinstance(node, WaitNode) else None,
                input=node.input_type,
                output=node.output_type,
            )
