"""The DBOS engine: workflow runs on many worker processes sharing PostgreSQL.

Each Vivace run is executed as DBOS workflows (``vivace_segment``): the first one has the
run's id, each resume starts another (``<run_id>@<n>``) that replays the run's journal.
Each step execution is a DBOS step named by its path: DBOS checkpoints its output in its
system database, so when a worker dies DBOS recovers the workflow (on the worker's
restart, under the same ``executor_id``) and completed steps return their checkpoint
instead of running again. Runs are enqueued on one DBOS queue per workflow
(``vivace-<workflow id>``), with per-worker and global concurrency limits; every worker
attached to the same database takes runs from it.

Worker process::

    from vivace.workflows.engines import dbos as vdbos

    vdbos.launch([orders, reports], database_url="postgresql://...", executor_id="worker-1",
                 concurrency={"orders": 8})
    # ... serve (vivace serve does this when workflows use engine="dbos")

Any process (a worker, the server, a script) starts and resumes runs with the usual
``await wf.arun(x)`` / ``await wf.aresume(...)``: without a launched DBOS it enqueues
through a ``DBOSClient`` (``configure(database_url=...)``) and waits for the result.

Requires ``pip install vivace[dbos]`` and the workflow's ``storage`` on the same PostgreSQL
(the run rows, journal and resume claims live there).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..errors import WorkflowDefinitionError, WorkflowRunExists, WorkflowRunNotFound
from ..steps import _Bail, _Cancel, _Suspend
from ..store import WorkflowRunRecord

if TYPE_CHECKING:
    from ..builder import Workflow
    from ..engine import Emit, Execution
    from ..result import WorkflowResult
    from ..steps import Step, StepContext

__all__ = ["configure", "dbos_resume", "dbos_start", "launch", "queue_name", "shutdown"]

SEGMENT = "vivace_segment"
_REGISTRY: dict[str, Workflow[Any, Any]] = {}
_STATE: dict[str, Any] = {"url": None, "schema": "dbos", "launched": False, "client": None}
_segment_fn: Any = None


def queue_name(workflow_id: str) -> str:
    return f"vivace-{workflow_id}"


def _dbos() -> Any:
    try:
        import dbos
    except ImportError:  # pragma: no cover - depends on the extra
        raise WorkflowDefinitionError(
            "engine='dbos' needs the dbos package: pip install vivace[dbos]"
        ) from None
    return dbos


def _register_segment() -> Any:
    """The DBOS workflow that runs one segment of a Vivace run (registered once)."""
    global _segment_fn
    if _segment_fn is not None:
        return _segment_fn
    DBOS = _dbos().DBOS

    @DBOS.workflow(name=SEGMENT)
    async def vivace_segment(workflow_id: str, run_id: str) -> dict[str, Any]:
        wf = _REGISTRY.get(workflow_id)
        if wf is None:
            raise WorkflowDefinitionError(f"workflow {workflow_id!r} is not launched here")
        from ..engine import execution_from, store_of

        store = store_of(wf)
        assert store is not None

        async def load() -> Any:
            loaded = await store.load_run(run_id)
            if loaded is None:
                raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
            return loaded

        # the journal as this segment started: a checkpoint, so a recovered segment replays
        # the same steps in the same order
        run, steps = await DBOS.run_step_async({"name": "vivace.load"}, load)
        ex = execution_from(wf, run, steps, store, None, None)
        ex.dbos = True
        result = await ex.drive(ex.input)
        return {"status": result.status}

    _segment_fn = vivace_segment
    return vivace_segment


def configure(database_url: str, *, schema: str = "dbos") -> None:
    """Where DBOS keeps its system tables (a PostgreSQL URL; ``schema`` for its tables), for
    processes that start runs without being workers."""
    _STATE["url"] = _plain_url(database_url)
    _STATE["schema"] = schema


def _plain_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def launch(
    workflows: list[Workflow[Any, Any]],
    *,
    database_url: str,
    executor_id: str | None = None,
    schema: str = "dbos",
    concurrency: dict[str, int] | None = None,
    worker_concurrency: int | None = None,
    name: str = "vivace",
    polling_interval: float = 0.2,
) -> None:
    """Make this process a DBOS worker for ``workflows`` (call once, before serving).

    ``executor_id`` names this worker: a restarted worker with the same id recovers the runs
    it held. ``concurrency`` caps the runs of a workflow executing at once over all workers
    (``{workflow_id: n}``); ``worker_concurrency`` caps them per worker.
    """
    dbos = _dbos()
    for wf in workflows:
        if wf.engine != "dbos":
            raise WorkflowDefinitionError(f"workflow {wf.id!r} does not use engine='dbos'")
        if wf.storage is None:
            raise WorkflowDefinitionError(
                f"workflow {wf.id!r}: the DBOS engine needs storage (the same PostgreSQL)"
            )
        _REGISTRY[wf.id] = wf
    _register_segment()
    url = _plain_url(database_url)
    config: dict[str, Any] = {
        "name": name,
        "system_database_url": url,
        "dbos_system_schema": schema,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.05,
    }
    if executor_id is not None:
        config["executor_id"] = executor_id
    dbos.DBOS(config=config)
    dbos.DBOS.launch()
    for wf in workflows:  # queues live in the database: every worker sees the same limits
        dbos.DBOS.register_queue(
            queue_name(wf.id),
            global_concurrency=(concurrency or {}).get(wf.id),
            worker_concurrency=worker_concurrency,
            polling_interval_sec=polling_interval,
            on_conflict="always_update",
        )
    _STATE.update(url=url, schema=schema, launched=True)


def shutdown() -> None:
    """Stop this process's DBOS worker (its runs are recovered by its restart)."""
    if _STATE["launched"]:
        _dbos().DBOS.destroy(destroy_registry=False)
        _STATE["launched"] = False
    client = _STATE.get("client")
    if client is not None:
        client.destroy()
        _STATE["client"] = None


def _client() -> Any:
    client = _STATE.get("client")
    if client is None:
        url = _STATE.get("url")
        if url is None:
            raise WorkflowDefinitionError(
                "the DBOS engine is not configured in this process: call "
                "vivace.workflows.engines.dbos.launch(...) (a worker) or configure(url)"
            )
        client = _STATE["client"] = _dbos().DBOSClient(
            system_database_url=url, dbos_system_schema=_STATE["schema"]
        )
    return client


async def _enqueue(workflow_id: str, run_id: str, segment_id: str) -> None:
    """Start a segment on the workflow's queue (idempotent per segment id)."""
    dbos = _dbos()
    if _STATE["launched"]:
        queue = dbos.DBOS.retrieve_queue(queue_name(workflow_id))
        with dbos.SetWorkflowID(segment_id):
            await queue.enqueue_async(_register_segment(), workflow_id, run_id)
        return
    options = {
        "workflow_name": SEGMENT,
        "queue_name": queue_name(workflow_id),
        "workflow_id": segment_id,
    }
    await _client().enqueue_async(options, workflow_id, run_id)


async def _wait(wf: Workflow[Any, Any], run_id: str, timeout: float | None) -> WorkflowResult[Any]:
    """Wait until the run stops running (it may run on any worker) and return it."""
    from ..engine import load_result, store_of

    store = store_of(wf)
    assert store is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        run = await store.get_run(run_id)
        if run is not None and run.status != "running":
            result = await load_result(wf, run_id)
            assert result is not None
            return result
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"workflow run {run_id!r} still running after {timeout}s")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)


async def dbos_start(
    wf: Workflow[Any, Any],
    input: Any,
    *,
    run_id: str | None = None,
    state: Any = None,
    user_id: str | None = None,
    emit: Emit | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> WorkflowResult[Any]:
    """Create the run, enqueue it on the workflow's DBOS queue and (``wait``) return its
    result once a worker has run it."""
    import uuid

    from ..engine import _initial_state, _trace, store_of
    from ..result import WorkflowResult
    from ..typecheck import to_jsonable, validate

    if emit is not None:
        raise WorkflowDefinitionError("the DBOS engine does not stream events; use arun()")
    store = store_of(wf)
    if store is None:
        raise WorkflowDefinitionError(f"workflow {wf.id!r}: the DBOS engine needs storage")
    run_id = run_id or uuid.uuid4().hex
    if wf.input_type is not None:
        input = validate(wf.input_type, input)
    trace_id, span_id, parent = _trace(run_id, None, None)
    state_value = to_jsonable(_initial_state(wf, state))
    rec = WorkflowRunRecord(
        run_id, wf.id, "running", input=to_jsonable(input), state=state_value, user_id=user_id,
        trace_id=trace_id, span_id=span_id, parent_run_id=parent, engine="dbos",
        metadata={"initial_state": state_value},
    )  # fmt: skip
    if not await store.create_run(rec):  # no lease: DBOS, not Vivace, recovers it
        raise WorkflowRunExists(f"workflow run {run_id!r} already exists", run_id=run_id)
    await _enqueue(wf.id, run_id, run_id)
    if not wait:
        return WorkflowResult(run_id, wf.id, "running")
    return await _wait(wf, run_id, timeout)


async def dbos_resume(
    wf: Workflow[Any, Any],
    run_id: str,
    path: str | None,
    data: Any,
    *,
    event: str | None = None,
    emit: Emit | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> WorkflowResult[Any]:
    """Record resume data exactly once (the store's claim), then continue the run in a new
    DBOS workflow on the queue."""
    from ..engine import _check_event, _check_resume, _only_parked, store_of
    from ..result import WorkflowResult

    store = store_of(wf)
    assert store is not None
    if path is None and event is None:
        run = await store.get_run(run_id)
        if run is None:
            raise WorkflowRunNotFound(f"no workflow run {run_id!r}", run_id=run_id)
        path = _only_parked(run_id, run.status, [p["path"] for p in run.suspended])
    if event is not None:
        payload = _check_event(wf, event, data)
    else:
        assert path is not None
        payload = _check_resume(wf, path, data)
    outcome = await store.resume_step(run_id, path or "", payload, owner="dbos", event=event)
    if not outcome.claimed:
        return WorkflowResult(run_id, wf.id, "running")
    await _enqueue(wf.id, run_id, f"{run_id}@{outcome.run.seq}")
    if not wait:
        return WorkflowResult(run_id, wf.id, "running")
    return await _wait(wf, run_id, timeout)


async def next_segment(ex: Execution) -> None:
    """Resume data arrived while this segment was parking: start the next segment."""
    await _enqueue(ex.workflow.id, ex.run_id, f"{ex.run_id}@{ex.seq}")


async def dbos_step(
    ex: Execution, step: Step[Any, Any], value: Any, ctx: StepContext[Any] | None, path: str
) -> Any:
    """Run one attempt-with-retries of a step as a DBOS step named by its path."""
    DBOS = _dbos().DBOS

    async def attempt() -> tuple[Any, ...]:
        try:
            return ("ok", await ex._call(step, value, ctx, path))
        except _Suspend as s:
            return ("suspend", s.payload, s.kind, s.event)
        except _Bail as b:
            return ("bail", b.output)
        except _Cancel as c:
            return ("cancel", c.reason)

    options: dict[str, Any] = {"name": path}
    if step.retries:
        options.update(
            retries_allowed=True,
            max_attempts=step.retries + 1,
            interval_seconds=step.backoff,
            backoff_rate=2.0,
        )
    outcome = await DBOS.run_step_async(options, attempt)
    kind = outcome[0]
    if kind == "ok":
        return outcome[1]
    if kind == "suspend":
        raise _Suspend(outcome[1], outcome[2], outcome[3])
    if kind == "bail":
        raise _Bail(outcome[1])
    raise _Cancel(outcome[1])


async def dbos_sleep(wake: float) -> None:
    """A durable sleep (DBOS records the wake-up time)."""
    delay = wake - time.time()
    if delay > 0:
        await _dbos().DBOS.sleep_async(delay)
