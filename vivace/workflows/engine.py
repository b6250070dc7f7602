"""The local engine: runs a workflow in this process, durable after every step.

How a run executes: the nodes run in order; each step execution is identified by its path
and, when it ends, recorded in the run's journal (with storage: one small write of its own
row). A resumed or recovered run replays from the start: a step whose path has a completed
record returns that output without running, so control flow (parallel branches, branches,
loop iterations, foreach items, nested workflows) is rebuilt exactly and the run continues
where it stopped - at any depth, in any construct, in any process.

Guarantees: completed steps never run again; a step that was in flight when its process
died runs again (at-least-once per step), unless it was declared ``rerun=False``, in which
case the run fails with :class:`~vivace.workflows.errors.StepInterrupted`. Resume data is
delivered exactly once per suspension (the store's claim is one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .. import trace_hook
from ..errors import UnexpectedError, VivaceError
from . import events as ev
from .errors import (
    ResumeDataInvalid,
    StepFailed,
    StepInterrupted,
    StepNotSuspended,
    StepTimeout,
    WorkflowCancelled,
    WorkflowInputInvalid,
    WorkflowRunExists,
    WorkflowRunNotFound,
)
from .nodes import Bailed, Cancelled, Parked, StepNode
from .result import SuspendedStep, WorkflowResult
from .steps import (
    _CALL_CTX,
    _CALL_CTX_IN,
    _CALL_IN,
    _CALL_IN_CTX,
    _CALL_NONE,
    Step,
    StepContext,
    _Bail,
    _Cancel,
    _Suspend,
)
from .store import StepRecord, WorkflowRunRecord, WorkflowRunStore
from .typecheck import from_json, to_jsonable, validate

if TYPE_CHECKING:
    from .builder import Workflow

__all__ = [
    "WORKER_ID",
    "Execution",
    "SyncWorkflowStream",
    "WorkflowStream",
    "cancel_run",
    "load_result",
    "resume_run",
    "start_run",
    "store_of",
]

OutT = TypeVar("OutT")

WORKER_ID = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
"""This process's identity as a lease owner."""

Emit = Callable[[ev.WorkflowEvent], None]

# control flow, not failures: a step span that ends with one of these is not an error
_FLOW: tuple[type[BaseException], ...] = (_Suspend, _Bail, _Cancel, Parked, Bailed, Cancelled)


# -- which store a workflow uses -------------------------------------------------------------


def store_of(wf: Workflow[Any, Any]) -> WorkflowRunStore | None:
    """The workflow-run store of ``wf.storage`` (None without storage)."""
    return resolve_store(wf.storage)


def resolve_store(spec: Any) -> WorkflowRunStore | None:
    """``storage.workflows`` of a :class:`~vivace.storage.Storage` or URL (opened once per
    process), or a workflow store given as is."""
    if spec is None:
        return None
    if isinstance(spec, WorkflowRunStore):
        return spec
    if isinstance(spec, str):
        from ..storage import shared_storage

        spec = shared_storage(spec)
    return spec.workflows


# -- live runs: cancellation and leases ------------------------------------------------------

# keyed by (workflow id, run id): two workflows may each have a run of the same id (without
# storage, or on two storages), and one's cancel or lookup must never reach the other's
_LIVE: dict[tuple[str, str], Execution] = {}
_PARKED: OrderedDict[tuple[str, str], Execution] = OrderedDict()  # runs without storage, here
MAX_PARKED = 10_000
"""Most parked runs without storage kept in a process (the oldest are dropped first)."""
_PARKED_LOCK = threading.Lock()
_ENDED: OrderedDict[tuple[str, str], str] = OrderedDict()  # final statuses, runs without storage


def _ended(key: tuple[str, str], status: str) -> None:
    with _PARKED_LOCK:
        _ENDED[key] = status
        while len(_ENDED) > 4096:
            _ENDED.popitem(last=False)


class _Leases:
    """Renews the leases of this process's running runs on one store, and delivers cancel
    requests made from other processes."""

    def __init__(self, store: WorkflowRunStore, lease: float) -> None:
        self.store = store
        self.lease = lease
        self.runs: dict[str, Execution] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, ex: Execution) -> None:
        self.runs[ex.run_id] = ex
        self.lease = min(self.lease, ex.lease)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._loop())

    def remove(self, ex: Execution) -> None:
        if self.runs.get(ex.run_id) is ex:
            del self.runs[ex.run_id]

    async def _loop(self) -> None:
        while self.runs:
            await asyncio.sleep(self.lease / 3)
            if not self.runs:
                break
            try:
                cancel = await self.store.heartbeat(WORKER_ID, list(self.runs), lease=self.lease)
            except Exception:  # a failed renewal is retried at the next tick
                continue
            for run_id in cancel:
                ex = self.runs.get(run_id)
                if ex is not None:
                    ex.request_cancel("cancelled by request")


_LEASES: weakref.WeakKeyDictionary[WorkflowRunStore, _Leases] = weakref.WeakKeyDictionary()


def _leases(store: WorkflowRunStore, lease: float) -> _Leases:
    keeper = _LEASES.get(store)
    if keeper is None:
        keeper = _LEASES[store] = _Leases(store, lease)
    return keeper


# -- one execution of a run ------------------------------------------------------------------


class Execution:
    """The in-memory state of one run while it executes (one per start/resume/recovery)."""

    __slots__ = (
        "__weakref__",
        "agent_usage",
        "cancel_reason",
        "dbos",
        "defer_path",
        "deferred",
        "deps",
        "emit",
        "fast",
        "input",
        "journal",
        "lease",
        "parent_run_id",
        "prefixes",
        "record",
        "results",
        "resumed",
        "run_id",
        "seq",
        "span_id",
        "state",
        "state_dirty",
        "step_seq",
        "store",
        "task",
        "trace",
        "trace_id",
        "user_id",
        "workflow",
    )

    def __init__(
        self,
        workflow: Workflow[Any, Any],
        run_id: str,
        store: WorkflowRunStore | None,
        emit: Emit | None,
        state: Any,
        deps: Any,
        trace: tuple[str | None, str | None, str | None],
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.store = store
        self.emit = emit
        self.state = state
        self.deps = deps
        self.trace = trace
        self.trace_id, self.span_id, self.parent_run_id = trace
        self.journal: dict[str, StepRecord] = {}
        self.prefixes: frozenset[str] | set[str] = frozenset()
        self.results: dict[str, StepRecord] = {}
        self.seq = 0
        self.step_seq = 0
        self.record: WorkflowRunRecord | None = None
        self.input: Any = None
        self.user_id: str | None = None
        self.lease = workflow.lease
        self.task: asyncio.Task[Any] | None = None
        self.cancel_reason: str | None = None
        self.state_dirty = False
        self.agent_usage: dict[str, dict[str, Any]] = {}
        # the last top-level step's record is written with the run's final row (one
        # transaction instead of two); its event goes out once that is durable
        self.defer_path: str | None = None
        self.deferred: list[tuple[StepRecord, ev.WorkflowEvent | None]] = []
        # on the DBOS engine every step is a DBOS step (checkpointed by DBOS) and the run's
        # step rows are written once, with the run's final row
        self.dbos = False
        # no journal, storage or listener: plain steps take the short path in run_step
        self.fast = False
        self.resumed = False  # continues a stored run (a resume or a recovery)

    # -- events -------------------------------------------------------------------------------

    def _send(self, event: ev.WorkflowEvent) -> None:
        event.trace = self.trace
        self.emit(event)  # type: ignore[misc]

    def next_seq(self) -> int:
        s = self.seq
        self.seq = s + 1
        return s

    def skipped(self, path: str) -> None:
        seq = self.next_seq()
        if self.emit is not None:
            self._send(ev.StepSkipped(self.run_id, seq, path))

    def replayed(self, rec: StepRecord) -> None:
        self.results[rec.path] = rec

    # -- journal ------------------------------------------------------------------------------

    def load_journal(self, steps: list[StepRecord]) -> None:
        journal = {s.path: s for s in steps}
        prefixes: set[str] = set()
        for path in journal:
            prefixes.add(path)
            i = 0
            while True:
                j = min((k for k in (path.find(".", i), path.find("[", i)) if k >= 0), default=-1)
                if j < 0:
                    break
                prefixes.add(path[:j])
                i = j + 1
        self.journal = journal
        self.prefixes = prefixes
        if steps:
            self.step_seq = max(s.seq for s in steps) + 1

    # -- steps --------------------------------------------------------------------------------

    async def run_step(self, step: Step[Any, Any], value: Any, path: str) -> Any:
        if self.fast and step._plain:  # the hot path: a plain function, nothing to persist
            started = time.time()
            try:
                out = step.fn(value)  # type: ignore[misc]
                if step.is_async:
                    out = await out
            except (asyncio.CancelledError, Parked, Bailed, Cancelled):
                raise
            except Exception as exc:
                raise await self._failed(step, path, exc, started, 1) from exc
            self.seq += 2  # step_started, step_completed (nobody listens)
            s = self.step_seq
            self.step_seq = s + 1
            self.results[path] = StepRecord(path, "completed", out, None, s, started, time.time())
            return out
        resume: list[Any] | None = None
        if self.journal:
            rec = self.journal.get(path)
            if rec is not None:
                status = rec.status
                if status == "completed":
                    out = from_json(step.output_type, rec.output)
                    rec.output = out
                    self.results[path] = rec
                    return out
                if status == "suspended":
                    self.results[path] = rec
                    raise Parked([rec])
                if status == "resumed":
                    resume = rec.resume
                elif status == "override":
                    value = from_json(step.input_type, rec.output)
                elif status == "running" and not step.rerun:
                    err = StepInterrupted(
                        f"step {path!r} was running when its worker stopped, and it is declared "
                        "rerun=False: it is not run again",
                        step=path,
                    )
                    raise err
        return await self._execute(step, value, path, resume)

    async def _execute(
        self, step: Step[Any, Any], value: Any, path: str, resume: list[Any] | None
    ) -> Any:
        store = self.store
        emit = self.emit
        attempt = 1
        track_state = store is not None and step.wants_ctx
        while True:
            seq = self.next_seq()
            if emit is not None:
                self._send(ev.StepStarted(self.run_id, seq, path, step.kind, attempt))
            started = time.time()
            ctx: StepContext[Any] | None = (
                StepContext(self, step, path, resume) if step.wants_ctx else None
            )
            if ctx is not None:
                ctx.attempt = attempt
            before = to_jsonable(self.state) if track_state else None
            if not step.rerun and store is not None and attempt == 1 and not self.dbos:
                await store.save_step(
                    self.run_id, StepRecord(path, "running", started_at=started, seq=-1)
                )
            try:
                hook = trace_hook.HOOK
                if hook is None:
                    out = await self._attempt(step, value, ctx, path)
                else:
                    with hook.span(
                        f"workflow_step {path}",
                        {
                            "gen_ai.workflow.name": self.workflow.id,
                            "vivace.span_type": "workflow_step",
                            "vivace.workflow.step": path,
                            "vivace.workflow.step_kind": step.kind,
                            "vivace.workflow.attempt": attempt,
                            "vivace.run_id": self.run_id,
                        },
                        trace_id=self.trace_id,
                        ok=_FLOW,
                    ) as span:
                        try:
                            out = await self._attempt(step, value, ctx, path)
                        except _Suspend:
                            if span is not None:
                                span.attributes["vivace.workflow.step_status"] = "suspended"
                            raise
            except _Suspend as s:
                rec = StepRecord(
                    path,
                    "suspended",
                    seq=self._take_step_seq(),
                    started_at=started,
                    finished_at=time.time(),
                    attempts=attempt,
                    payload=s.payload,
                    kind=s.kind,
                    event=s.event,
                    resume=resume,
                    state_delta=self._delta(before) if track_state else None,
                )
                self.results[path] = rec
                seq = self.next_seq()
                event = (
                    ev.StepSuspended(self.run_id, seq, path, to_jsonable(s.payload), s.kind)
                    if emit is not None
                    else None
                )
                await self._record(rec, event)
                raise Parked([rec]) from None
            except _Bail as b:
                await self._completed(step, path, b.output, started, attempt, before, track_state)
                raise Bailed(b.output) from None
            except _Cancel as c:
                raise Cancelled(c.reason) from None
            except (Parked, Bailed, Cancelled, asyncio.CancelledError):
                raise
            except Exception as exc:
                error = exc if isinstance(exc, VivaceError) else UnexpectedError.wrap(exc)
                if attempt <= step.retries and not self.dbos:  # DBOS retries its steps
                    delay = min(step.backoff * (2 ** (attempt - 1)), step.max_backoff)
                    attempt += 1
                    seq = self.next_seq()
                    if emit is not None:
                        self._send(
                            ev.StepRetrying(self.run_id, seq, path, attempt, delay, error.to_dict())
                        )
                    if delay > 0:
                        await asyncio.sleep(delay)
                    continue
                raise await self._failed(step, path, exc, started, attempt) from exc
            return await self._completed(step, path, out, started, attempt, before, track_state)

    async def _attempt(
        self, step: Step[Any, Any], value: Any, ctx: StepContext[Any] | None, path: str
    ) -> Any:
        if self.dbos:
            from .engines.dbos import dbos_step

            return await dbos_step(self, step, value, ctx, path)
        return await self._call(step, value, ctx, path)

    async def _failed(
        self, step: Step[Any, Any], path: str, exc: Exception, started: float, attempt: int
    ) -> StepFailed:
        """Record a step's failure (after its retries) and return the error to raise."""
        error = exc if isinstance(exc, VivaceError) else UnexpectedError.wrap(exc)
        cls = StepTimeout if isinstance(exc, TimeoutError) else StepFailed
        failure = cls(
            f"step {path!r} failed: {error.message or type(exc).__name__}",
            step=path,
            error=error.to_dict(),
        )
        failure.__cause__ = exc
        rec = StepRecord(
            path,
            "failed",
            seq=self._take_step_seq(),
            started_at=started,
            finished_at=time.time(),
            attempts=attempt,
            error=failure.to_dict(),
        )
        self.results[path] = rec
        seq = self.next_seq()
        await self._record(
            rec,
            ev.StepFailed(self.run_id, seq, path, failure.to_dict(), attempt)
            if self.emit is not None
            else None,
        )
        return failure

    async def _completed(
        self,
        step: Step[Any, Any],
        path: str,
        out: Any,
        started: float,
        attempt: int,
        before: Any,
        track_state: bool,
        usage: dict[str, Any] | None = None,
    ) -> Any:
        finished = time.time()
        rec = StepRecord(
            path,
            "completed",
            out,
            self._delta(before) if track_state else None,
            self._take_step_seq(),
            started,
            finished,
            attempt,
        )
        if step.kind == "agent":
            rec.usage = self.agent_usage.pop(path, None)
        self.results[path] = rec
        seq = self.next_seq()
        event = (
            ev.StepCompleted(self.run_id, seq, path, out, finished - started)
            if self.emit is not None
            else None
        )
        await self._record(rec, event)
        return out

    async def _record(self, rec: StepRecord, event: ev.WorkflowEvent | None) -> None:
        """Persist a step's record, then emit its event (deferred for the last step)."""
        store = self.store
        if store is not None:
            if rec.path == self.defer_path or self.dbos:
                self.deferred.append((rec, event))
                return
            await store.save_step(self.run_id, rec)
        if event is not None:
            self._send(event)

    def _take_step_seq(self) -> int:
        s = self.step_seq
        self.step_seq = s + 1
        return s

    def _delta(self, before: Any) -> dict[str, Any] | None:
        after = to_jsonable(self.state)
        if not isinstance(after, dict):
            return None if after == before else {"replace": after}
        before = before if isinstance(before, dict) else {}
        changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
        deleted = [k for k in before if k not in after]
        if not changed and not deleted:
            return None
        self.state_dirty = True
        out: dict[str, Any] = {}
        if changed:
            out["set"] = changed
        if deleted:
            out["del"] = deleted
        return out

    async def _call(
        self, step: Step[Any, Any], value: Any, ctx: StepContext[Any] | None, path: str
    ) -> Any:
        kind = step.kind
        if kind == "function":
            fn = step.fn
            assert fn is not None
            mode = step._mode
            timeout = step.timeout
            if not step.is_async and (timeout is not None or self.store is not None):
                # a thread: with a store the run holds a lease, renewed on this event loop -
                # a sync step that blocked it past the lease would let another worker take
                # the run over (and run the step again) while this one still runs it
                call = asyncio.to_thread(fn, *_args(mode, value, ctx))
                return await (call if timeout is None else asyncio.wait_for(call, timeout))
            if mode == _CALL_IN:
                r = fn(value)
            elif mode == _CALL_IN_CTX:
                r = fn(value, ctx)
            elif mode == _CALL_NONE:
                r = fn()
            elif mode == _CALL_CTX:
                r = fn(ctx)
            else:
                r = fn(ctx, value)
            if step.is_async:
                if timeout is not None:
                    return await asyncio.wait_for(r, timeout)
                return await r
            return r
        if kind == "agent":
            coro = self._agent(step, value, ctx, path)
        elif kind == "tool":
            coro = self._tool(step, value, path)
        else:
            raise StepFailed(f"step {path!r}: unknown kind {kind!r}", step=path)
        if step.timeout is not None:
            return await asyncio.wait_for(coro, step.timeout)
        return await coro

    async def _agent(
        self, step: Step[Any, Any], value: Any, ctx: StepContext[Any] | None, path: str
    ) -> Any:
        agent = step.target
        assert ctx is not None
        resume = ctx._resume_list
        rec = self.journal.get(path) if self.journal else None
        if (
            resume
            and rec is not None
            and isinstance(rec.payload, dict)
            and rec.payload.get("paused")
        ):
            from ..agent.result import Approve, Reject

            decisions: dict[str, Any] = {}
            for call_id, d in dict(resume[-1] or {}).items():
                if isinstance(d, dict):
                    if d.get("approved", True):
                        decisions[call_id] = Approve(d.get("arguments"))
                    else:
                        decisions[call_id] = Reject(d.get("reason") or "rejected by the user")
                else:
                    decisions[call_id] = bool(d)
            stream = agent.aresume_stream(
                rec.payload["paused"], decisions, stream_model=self.emit is not None
            )
        else:
            if step.prompt is not None:
                prompt = step.prompt(value)
            elif isinstance(value, str):
                prompt = value
            else:
                from .typecheck import dump_json

                prompt = dump_json(value)
            stream = agent.astream(
                prompt,
                stream_model=self.emit is not None,
                parent_run_id=self.run_id,
                trace_id=self.trace_id,
                deps=self.deps if self.deps is not None else None,
            )
        async for event in stream:
            seq = self.next_seq()
            if self.emit is not None:
                wrapped = ev.AgentStepEvent(self.run_id, seq, path, event)
                wrapped.trace = event.trace
                self.emit(wrapped)
        result = stream.result
        assert result is not None
        if result.status == "paused":
            paused = result.paused
            assert paused is not None
            raise _Suspend(
                {
                    "kind": "approval",
                    "agent_run_id": result.run_id,
                    "pending": [p.to_dict() for p in paused.pending],
                    "paused": paused.to_dict(),
                },
                kind="approval",
            )
        output = result.output  # raises the run's error when it failed
        usage = result.usage.to_dict()
        cost = result.cost
        if cost is not None:
            usage["cost"] = cost
        self.agent_usage[path] = usage
        return output

    async def _tool(self, step: Step[Any, Any], value: Any, path: str) -> Any:
        from ..tools.context import RunContext

        tool = step.target
        args = to_jsonable(value)
        if not isinstance(args, dict):
            raise StepFailed(f"step {path!r}: a tool step needs a dict input", step=path)
        args = tool.validate(args)
        rc: RunContext[Any] = RunContext(
            self.run_id,
            deps=self.deps,
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_run_id=self.parent_run_id,
        )
        return await tool.call(args, rc)

    # -- sleep and events ---------------------------------------------------------------------

    async def sleep(self, path: str, wake: float) -> None:
        started = time.time()
        seq = self.next_seq()
        if self.emit is not None:
            self._send(ev.StepStarted(self.run_id, seq, path, "sleep", 1))
        if self.dbos:
            from .engines.dbos import dbos_sleep

            await dbos_sleep(wake)
        elif self.store is not None:
            await self.store.save_step(
                self.run_id,
                StepRecord(
                    path,
                    "running",
                    payload={"until": wake},
                    kind="sleep",
                    started_at=started,
                    seq=-1,
                ),
            )
        delay = wake - time.time()
        if delay > 0 and not self.dbos:
            await asyncio.sleep(delay)
        rec = StepRecord(
            path,
            "completed",
            None,
            None,
            self._take_step_seq(),
            started,
            time.time(),
            1,
            payload={"until": wake},
            kind="sleep",
        )
        self.results[path] = rec
        seq = self.next_seq()
        await self._record(
            rec,
            ev.StepCompleted(self.run_id, seq, path, None, rec.finished_at - started)
            if self.emit is not None
            else None,
        )

    async def wait_event(self, path: str, event: str, event_type: Any) -> Any:
        rec = self.journal.get(path) if self.journal else None
        if rec is not None:
            if rec.status == "completed":
                out = from_json(event_type, rec.output) if event_type is not None else rec.output
                rec.output = out
                self.results[path] = rec
                return out
            if rec.status == "resumed" and rec.resume:
                data = rec.resume[-1]
                out = validate(event_type, data) if event_type is not None else data
                done = StepRecord(
                    path,
                    "completed",
                    out,
                    None,
                    self._take_step_seq(),
                    rec.started_at,
                    time.time(),
                    1,
                    kind="event",
                    event=event,
                    resume=rec.resume,
                )
                self.results[path] = done
                seq = self.next_seq()
                await self._record(
                    done,
                    ev.StepCompleted(
                        self.run_id, seq, path, out, done.finished_at - done.started_at
                    )
                    if self.emit is not None
                    else None,
                )
                return out
            self.results[path] = rec
            raise Parked([rec])
        now = time.time()
        rec = StepRecord(
            path,
            "suspended",
            seq=self._take_step_seq(),
            started_at=now,
            finished_at=now,
            kind="event",
            event=event,
            payload={"event": event},
        )
        self.results[path] = rec
        seq = self.next_seq()
        await self._record(
            rec,
            ev.StepSuspended(self.run_id, seq, path, {"event": event}, "event")
            if self.emit is not None
            else None,
        )
        raise Parked([rec])

    # -- cancellation -------------------------------------------------------------------------

    def request_cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        task = self.task
        if task is not None and not task.done():
            task.cancel()

    # -- the whole run ------------------------------------------------------------------------

    async def drive(self, value: Any) -> WorkflowResult[Any]:
        """Run the nodes from the start (replaying the journal) to an outcome, persist it,
        and emit the terminal event - in a span ``invoke_workflow {id}`` when tracing is on
        (a resumed run's segment is a new span, child of the run's first one)."""
        hook = trace_hook.HOOK
        if hook is None:
            return await self._drive(value)
        wf = self.workflow
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": wf.id,
            "vivace.span_type": "workflow_run",
            "vivace.run_id": self.run_id,
        }
        if self.user_id:
            attrs["vivace.user_id"] = self.user_id
        if self.parent_run_id:
            attrs["vivace.parent_run_id"] = self.parent_run_id
        if self.resumed:
            attrs["vivace.resumed"] = True
        with hook.span(
            f"invoke_workflow {wf.id}",
            attrs,
            trace_id=self.trace_id,
            span_id=None if self.resumed else self.span_id,
            parent_span_id=self.span_id if self.resumed else None,
        ) as span:
            result = await self._drive(value)
            if span is not None:
                span.attributes["vivace.run.status"] = result.status
                if result.status in ("failed", "cancelled") and result.error is not None:
                    hook.fail(span, result.error)
            return result

    async def _drive(self, value: Any) -> WorkflowResult[Any]:
        wf = self.workflow
        self.task = asyncio.current_task()
        store = self.store
        keeper = None
        key = (wf.id, self.run_id)
        _LIVE[key] = self
        if store is not None and not self.dbos:
            keeper = _leases(store, self.lease)
            keeper.add(self)
        self.fast = (
            not self.journal
            and store is None
            and self.emit is None
            and not self.dbos
            and trace_hook.HOOK is None  # traced steps take the long path (their spans)
        )
        last = wf.nodes[-1] if wf.nodes else None
        if store is not None and isinstance(last, StepNode) and last.step.kind != "workflow":
            self.defer_path = last.step.id
        try:
            while True:
                output: Any = None
                error: VivaceError | None = None
                parked: list[StepRecord] = []
                try:
                    v = value
                    for node in wf.nodes:
                        v = await node.execute(self, v, "")
                    status, output = "completed", v
                except Parked as p:
                    parked = p.records
                    waiting = all(r.kind == "event" for r in parked)
                    status = "waiting" if waiting else "suspended"
                except Bailed as b:
                    status, output = "bailed", b.output
                except Cancelled as c:
                    status, error = "cancelled", WorkflowCancelled(c.reason)
                except asyncio.CancelledError:
                    if self.cancel_reason is None:
                        raise
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    status, error = "cancelled", WorkflowCancelled(self.cancel_reason)
                except VivaceError as exc:
                    status, error = "failed", exc
                except Exception as exc:
                    status, error = "failed", UnexpectedError.wrap(exc)
                resumed = await self._persist(status, output, error, parked)
                if resumed and self.dbos:  # a new DBOS workflow continues the run
                    from .engines.dbos import next_segment

                    await next_segment(self)
                    return WorkflowResult(self.run_id, wf.id, "running")
                if resumed:  # resume data arrived while we were parking: go on
                    merged = {**self.journal, **self.results}
                    for r in resumed:
                        merged[r.path] = r
                    self.load_journal(list(merged.values()))
                    continue
                return self._finish(status, output, error, parked)
        finally:
            if _LIVE.get(key) is self:
                del _LIVE[key]
            if keeper is not None:
                keeper.remove(self)

    async def _persist(
        self, status: str, output: Any, error: VivaceError | None, parked: list[StepRecord]
    ) -> list[StepRecord]:
        store = self.store
        if store is None:
            if status in ("suspended", "waiting"):
                with _PARKED_LOCK:
                    _PARKED[self.workflow.id, self.run_id] = self
                    while len(_PARKED) > MAX_PARKED:
                        _PARKED.popitem(last=False)
            else:
                _ended((self.workflow.id, self.run_id), status)
            return []
        rec = self.record
        assert rec is not None
        rec.status = status
        rec.output = to_jsonable(output) if status in ("completed", "bailed") else None
        rec.error = error.to_dict() if error is not None else None
        rec.state = to_jsonable(self.state)
        rec.state_seq = self.step_seq - 1
        rec.seq = self.seq + 1
        rec.suspended = [
            {"path": r.path, "kind": r.kind, "event": r.event, "payload": to_jsonable(r.payload)}
            for r in parked
        ]
        deferred, self.deferred = self.deferred, []
        owner = None if self.dbos else WORKER_ID  # DBOS owns the runs it executes
        resumed = await store.finish_run(rec, owner=owner, steps=[r for r, _ in deferred])
        for _, event in deferred:
            if event is not None:
                self._send(event)
        return resumed

    def _finish(
        self, status: str, output: Any, error: VivaceError | None, parked: list[StepRecord]
    ) -> WorkflowResult[Any]:
        seq = self.next_seq()
        if self.emit is not None:
            if status in ("completed", "bailed"):
                event: ev.WorkflowEvent = ev.WorkflowCompleted(self.run_id, seq, status, output)
            elif status in ("suspended", "waiting"):
                event = ev.WorkflowSuspended(
                    self.run_id,
                    seq,
                    status,
                    [
                        {
                            "path": r.path,
                            "kind": r.kind,
                            "event": r.event,
                            "payload": to_jsonable(r.payload),
                        }
                        for r in parked
                    ],
                )
            elif status == "cancelled":
                event = ev.WorkflowCancelled(
                    self.run_id, seq, error.message if error else "cancelled"
                )
            else:
                event = ev.WorkflowFailed(self.run_id, seq, error.to_dict() if error else {})
            self._send(event)
        return self.result(status, output, error, parked)

    def result(
        self, status: str, output: Any, error: VivaceError | None, parked: list[StepRecord]
    ) -> WorkflowResult[Any]:
        usage = None
        cost = None
        for r in self.results.values():
            if r.usage:
                from ..models.base import Usage

                if usage is None:
                    usage = Usage()
                usage += Usage.from_dict(r.usage)
                if r.usage.get("cost") is not None:
                    cost = (cost or 0.0) + float(r.usage["cost"])
        if usage is not None and cost is not None:
            with contextlib.suppress(AttributeError):
                usage.cost = cost
        return WorkflowResult(
            self.run_id,
            self.workflow.id,
            status,
            output,
            steps=self.results,
            error=error,
            suspended=[
                SuspendedStep(r.path, r.payload, r.kind or "suspend", r.event) for r in parked
            ],
            state=self.state,
            usage=usage,
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_run_id=self.parent_run_id,
            origin_run_id=self.record.origin_run_id if self.record is not None else None,
        )


def _args(mode: int, value: Any, ctx: Any) -> tuple[Any, ...]:
    if mode == _CALL_IN:
        return (value,)
    if mode == _CALL_IN_CTX:
        return (value, ctx)
    if mode == _CALL_NONE:
        return ()
    if mode == _CALL_CTX:
        return (ctx,)
    assert mode == _CALL_CTX_IN
    return (ctx, value)


# -- entry points ----------------------------------------------------------------------------


def _initial_state(wf: Workflow[Any, Any], state: Any) -> Any:
    st = wf.state_type
    if state is not None:
        if st is None:
            return state
        try:
            return validate(st, state)
        except Exception as exc:  # a typed error (422 over HTTP), before any run exists
            raise WorkflowInputInvalid(
                f"workflow {wf.id!r}: invalid state: {exc}", workflow=wf.id
            ) from None
    if st is None:
        return {}
    try:
        return st()
    except Exception as exc:
        raise WorkflowInputInvalid(
            f"workflow {wf.id!r}: its state type {st!r} needs a value (pass state=...)"
        ) from exc


def _state_from(wf: Workflow[Any, Any], data: Any) -> Any:
    st = wf.state_type
    if st is None:
        return dict(data) if isinstance(data, dict) else ({} if data is None else data)
    return from_json(st, data)


def _trace(
    run_id: str, trace_id: str | None, parent_run_id: str | None
) -> tuple[str, str, str | None]:
    from ..tools.context import current_run_context

    parent = current_run_context()
    if parent is not None:
        parent_run_id = parent_run_id or parent.run_id
        trace_id = trace_id or parent.trace_id
    if trace_id is None and len(run_id) == 32:
        return run_id, run_id[16:], parent_run_id
    return trace_id or uuid.uuid4().hex, os.urandom(8).hex(), parent_run_id


async def start_run(
    wf: Workflow[Any, Any],
    input: Any,
    *,
    run_id: str | None = None,
    state: Any = None,
    deps: Any = None,
    user_id: str | None = None,
    parent_run_id: str | None = None,
    trace_id: str | None = None,
    emit: Emit | None = None,
    origin: tuple[str, list[StepRecord]] | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> WorkflowResult[Any]:
    """Start a run of ``wf`` (see :meth:`Workflow.arun`)."""
    if wf.engine == "dbos":
        from .engines.dbos import dbos_start

        return await dbos_start(
            wf,
            input,
            run_id=run_id,
            state=state,
            user_id=user_id,
            emit=emit,
            wait=wait,
            timeout=timeout,
        )
    if run_id is None:
        run_id = uuid.uuid4().hex
    else:
        from ..identifiers import check_identifier

        check_identifier("run_id", run_id)
    in_type = wf.input_type
    if in_type is not None:
        try:
            input = validate(in_type, input)
        except Exception as exc:
            raise WorkflowInputInvalid(
                f"workflow {wf.id!r}: invalid input: {exc}", workflow=wf.id
            ) from None
    store = store_of(wf)
    ex = Execution(
        wf,
        run_id,
        store,
        emit,
        _initial_state(wf, state),
        deps,
        _trace(run_id, trace_id, parent_run_id),
    )
    ex.input = input
    ex.user_id = user_id
    if origin is not None:
        ex.load_journal(origin[1])
    if store is not None:
        rec = WorkflowRunRecord(
            run_id,
            wf.id,
            "running",
            input=to_jsonable(input),
            state=to_jsonable(ex.state),
            user_id=user_id,
            parent_run_id=ex.parent_run_id,
            origin_run_id=origin[0] if origin is not None else None,
            trace_id=ex.trace_id,
            span_id=ex.span_id,
            owner=WORKER_ID,
        )
        if state is not None or wf.state_type is not None:
            rec.metadata["initial_state"] = rec.state
        if not await store.create_run(rec, lease=wf.lease):
            raise WorkflowRunExists(f"workflow run {run_id!r} already exists", run_id=run_id)
        ex.record = rec
        if origin is not None:
            for s in origin[1]:
                await store.save_step(run_id, s)
    elif (wf.id, run_id) in _LIVE or (wf.id, run_id) in _PARKED:
        raise WorkflowRunExists(f"workflow run {run_id!r} already exists", run_id=run_id)
    seq = ex.next_seq()
    if emit is not None:
        ex._send(ev.WorkflowStarted(run_id, seq, wf.id, to_jsonable(input)))
    return await ex.drive(input)


def execution_from(
    wf: Workflow[Any, Any],
    run: WorkflowRunRecord,
    steps: list[StepRecord],
    store: WorkflowRunStore | None,
    emit: Emit | None,
    deps: Any,
) -> Execution:
    """An execution that continues a stored run (after a resume or a crash)."""
    state = run.state
    if isinstance(state, dict):
        state = dict(state)
    for s in steps:
        if (
            s.seq > run.state_seq
            and s.state_delta
            and s.status in ("completed", "suspended", "resumed")
        ):
            delta = s.state_delta
            if "replace" in delta:
                state = delta["replace"]
            else:
                if not isinstance(state, dict):
                    state = {}
                state.update(delta.get("set") or {})
                for k in delta.get("del") or ():
                    state.pop(k, None)
    ex = Execution(
        wf,
        run.run_id,
        store,
        emit,
        _state_from(wf, state),
        deps,
        (run.trace_id, run.span_id, run.parent_run_id),
    )
    ex.record = run
    ex.user_id = run.user_id
    ex.seq = run.seq
    ex.resumed = True
    ex.load_journal(steps)
    in_type = wf.input_type
    ex.input = from_json(in_type, run.input) if in_type is not None else run.input
    return ex


def _check_event(wf: Workflow[Any, Any], event: str, data: Any) -> Any:
    """An event's data validated against the type its ``wait_for_event`` declares."""
    tp = wf.event_type(event)
    if tp is None:
        return to_jsonable(data)
    try:
        return to_jsonable(validate(tp, data))
    except Exception as exc:
        raise ResumeDataInvalid(
            f"data for event {event!r} does not match {tp!r}: {exc}", event=event
        ) from None


def _check_resume(wf: Workflow[Any, Any], path: str, data: Any) -> Any:
    step = wf.find_step(path)
    if step is None:
        raise StepNotSuspended(
            f"workflow {wf.id!r} has no step {path!r}", run_id="", step=path, status=None
        )
    rt = step.resume_type
    if rt is None:
        return to_jsonable(data)
    try:
        return to_jsonable(validate(rt, data))
    except Exception as exc:
        raise ResumeDataInvalid(
            f"resume data for step {path!r} does not match {rt!r}: {exc}", step=path
        ) from None


async def resume_run(
    wf: Workflow[Any, Any],
    run_id: str,
    path: str | None,
    data: Any,
    *,
    deps: Any = None,
    emit: Emit | None = None,
    event: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> WorkflowResult[Any]:
    """Deliver resume data (or an event) and continue the run here."""
    if wf.engine == "dbos":
        from .engines.dbos import dbos_resume

        return await dbos_resume(
            wf, run_id, path, data, event=event, emit=emit, wait=wait, timeout=timeout
        )
    store = store_of(wf)
    if store is None:
        return await _resume_in_process(wf, run_id, path, data, deps, emit, event)
    if path is None and event is None:
        run = await store.get_run(run_id)
        if run is None:
            raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
        path = _only_parked(run_id, run.status, [p["path"] for p in run.suspended])
    if event is None:
        assert path is not None
        payload = _check_resume(wf, path, data)
    else:
        payload = _check_event(wf, event, data)
    outcome = await store.resume_step(
        run_id, path or "", payload, owner=WORKER_ID, lease=wf.lease, event=event
    )
    if not outcome.claimed:
        return WorkflowResult(run_id, wf.id, "running")
    ex = execution_from(wf, outcome.run, outcome.steps, store, emit, deps)
    seq = ex.next_seq()
    if emit is not None:
        ex._send(
            ev.WorkflowResumed(run_id, seq, path if event is None else event, to_jsonable(payload))
        )
    return await ex.drive(ex.input)


def _only_parked(run_id: str, status: str, paths: list[str]) -> str:
    if len(paths) == 1:
        return paths[0]
    raise StepNotSuspended(
        f"run {run_id!r} has {len(paths)} suspended steps ({', '.join(paths) or 'none'}): "
        "name one with step=...",
        run_id=run_id,
        step="",
        status=status,
    )


async def _resume_in_process(
    wf: Workflow[Any, Any],
    run_id: str,
    path: str | None,
    data: Any,
    deps: Any,
    emit: Emit | None,
    event: str | None,
) -> WorkflowResult[Any]:
    with _PARKED_LOCK:
        key = (wf.id, run_id)
        ex = _PARKED.get(key)
        if ex is None:
            live = _LIVE.get(key)
            status = "running" if live is not None else _ENDED.get(key)
            if status is None:
                raise WorkflowRunNotFound(
                    f"no suspended workflow run {run_id!r} in this process (without storage, "
                    "runs can only be resumed in the process that ran them)",
                    run_id=run_id,
                )
            raise StepNotSuspended(
                f"step {event or path!r} of run {run_id!r} is not suspended (the run's status "
                f"is {status})",
                run_id=run_id,
                step=event or path or "",
                status=status,
            )
        parked = [r for r in ex.results.values() if r.status == "suspended"]
        if event is not None:
            target = next((r for r in parked if r.kind == "event" and r.event == event), None)
        else:
            if path is None:
                path = _only_parked(run_id, "suspended", [r.path for r in parked])
            target = next((r for r in parked if r.path == path), None)
        if target is None:
            raise StepNotSuspended(
                f"step {event or path!r} of run {run_id!r} is not suspended",
                run_id=run_id,
                step=event or path or "",
                status="suspended",
            )
        payload = (
            _check_resume(wf, target.path, data) if event is None else _check_event(wf, event, data)
        )
        target.status = "resumed"
        target.resume = [*(target.resume or []), payload]
        del _PARKED[key]
    ex.emit = emit
    ex.deps = deps if deps is not None else ex.deps
    ex.resumed = True
    ex.load_journal(list(ex.results.values()))
    ex.results = {}
    seq = ex.next_seq()
    if emit is not None:
        ex._send(
            ev.WorkflowResumed(
                run_id, seq, target.path if event is None else event, to_jsonable(payload)
            )
        )
    return await ex.drive(ex.input)


async def cancel_run(wf: Workflow[Any, Any], run_id: str) -> str | None:
    live = _LIVE.get((wf.id, run_id))
    if live is not None:
        live.request_cancel("cancelled by request")
        return "running"
    with _PARKED_LOCK:
        parked = _PARKED.pop((wf.id, run_id), None)
    if parked is not None:
        return "cancelled"
    store = store_of(wf)
    if store is None:
        return None
    return await store.request_cancel(run_id)


async def load_result(wf: Workflow[Any, Any], run_id: str) -> WorkflowResult[Any] | None:
    with _PARKED_LOCK:
        parked = _PARKED.get((wf.id, run_id))
    if parked is not None:
        recs = [r for r in parked.results.values() if r.status == "suspended"]
        return parked.result("suspended", None, None, recs)
    store = store_of(wf)
    if store is None:
        return None
    loaded = await store.load_run(run_id)
    if loaded is None:
        return None
    run, steps = loaded
    # the stored error as its own class (StepTimeout, StepInterrupted, WorkflowCancelled...)
    error = VivaceError.from_dict(run.error) if run.error else None
    return WorkflowResult(
        run.run_id,
        run.workflow,
        run.status,
        run.output,
        steps={s.path: s for s in steps},
        error=error,
        suspended=[
            SuspendedStep(p["path"], p.get("payload"), p.get("kind") or "suspend", p.get("event"))
            for p in run.suspended
        ],
        state=run.state,
        trace_id=run.trace_id,
        span_id=run.span_id,
        parent_run_id=run.parent_run_id,
        origin_run_id=run.origin_run_id,
    )


async def time_travel(
    wf: Workflow[Any, Any], run_id: str, path: str, input: Any, new_run_id: str | None
) -> WorkflowResult[Any]:
    store = store_of(wf)
    if store is None:
        raise WorkflowRunNotFound("time travel needs storage (the recorded steps)", run_id=run_id)
    loaded = await store.load_run(run_id)
    if loaded is None:
        raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
    run, steps = loaded
    target = next((s for s in steps if s.path == path), None)
    step = wf.find_step(path)
    if step is None or target is None:
        raise StepNotSuspended(
            f"run {run_id!r} has no recorded step {path!r}",
            run_id=run_id,
            step=path,
            status=run.status,
        )
    keep = [
        s
        for s in steps
        if s.status == "completed"
        and s.finished_at <= target.started_at
        and s.path != path
        and not s.path.startswith(path + ".")
        and not s.path.startswith(path + "[")
    ]
    keep = [StepRecord.from_dict(s.to_dict()) for s in keep]
    for i, s in enumerate(keep):
        s.seq = i
    if input is not None:
        given = to_jsonable(input)
        try:  # the step reads it back through its input type: check it before any run exists
            from_json(step.input_type, given)
        except Exception as exc:
            raise WorkflowInputInvalid(
                f"workflow {wf.id!r}: invalid input for step {path!r}: {exc}",
                workflow=wf.id,
                step=path,
            ) from None
        keep.append(StepRecord(f"{path}", "override", output=given, seq=len(keep)))
    in_type = wf.input_type
    original_input = from_json(in_type, run.input) if in_type is not None else run.input
    state = run.state
    return await start_run(
        wf,
        original_input,
        run_id=new_run_id,
        state=_state_from(wf, _state_at(run, steps, keep)) if state is not None else None,
        user_id=run.user_id,
        origin=(run_id, keep),
    )


def _state_at(run: WorkflowRunRecord, steps: list[StepRecord], keep: list[StepRecord]) -> Any:
    """The state as the kept steps left it: the run's initial state plus their changes."""
    kept = {s.path for s in keep}
    state: Any = dict(run.metadata.get("initial_state") or {})
    for s in sorted(steps, key=lambda r: r.seq):
        if s.path in kept and s.state_delta:
            d = s.state_delta
            if "replace" in d:
                state = d["replace"]
            else:
                state.update(d.get("set") or {})
                for k in d.get("del") or ():
                    state.pop(k, None)
    return state


# -- streams ---------------------------------------------------------------------------------


class WorkflowStream(Generic[OutT]):
    """An async iterator of a run's events; ``result`` is set when it ends."""

    __slots__ = ("_queue", "_start", "_task", "result")

    def __init__(self, start: Callable[[Emit], Any]) -> None:
        self._start = start
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[Any] | None = None
        self.result: WorkflowResult[OutT] | None = None

    def __aiter__(self) -> WorkflowStream[OutT]:
        return self

    async def __anext__(self) -> ev.WorkflowEvent:
        if self._queue is None:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            self._queue = queue
            self._task = asyncio.ensure_future(self._start(queue.put_nowait))
            self._task.add_done_callback(lambda _t: queue.put_nowait(None))
        item = await self._queue.get()
        if item is None:
            task = self._task
            assert task is not None
            self.result = task.result()  # raises the run's setup error, if any
            raise StopAsyncIteration
        return item

    async def get_result(self) -> WorkflowResult[OutT]:
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


class SyncWorkflowStream(Generic[OutT]):
    """A blocking iterator over a :class:`WorkflowStream`."""

    __slots__ = ("_stream",)

    def __init__(self, stream: WorkflowStream[OutT]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[ev.WorkflowEvent]:
        return self

    def __next__(self) -> ev.WorkflowEvent:
        from ..agent.agent import run_sync

        try:
            return run_sync(self._stream.__anext__(), allow_thread=False)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def result(self) -> WorkflowResult[OutT] | None:
        return self._stream.result


async def aiter_events(stream: WorkflowStream[Any]) -> AsyncIterator[ev.WorkflowEvent]:
    async for e in stream:
        yield e
