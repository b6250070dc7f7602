"""An agent served over A2A 1.0 (JSON-RPC), on the official ``a2a-sdk`` server parts.

``vivace serve`` (any :class:`~vivace.server.VivaceApp`) serves every agent this way at
``/a2a/{agent_id}/`` behind the server's auth (see :mod:`vivace.server.routes.a2a`);
:func:`a2a_app` gives a standalone Starlette app for one agent, with the agent card at
``/.well-known/agent-card.json`` and the JSON-RPC methods (``SendMessage``,
``SendStreamingMessage``, ``GetTask``, ``CancelTask``, ``SubscribeToTask``, ``ListTasks``)
at ``/``.

A task is one run (task id = run id; its ``contextId`` is the session when the agent has
storage): ``submitted`` -> ``working`` -> ``completed`` (the output as an artifact; streamed
text as artifact chunks first), ``failed``, ``canceled``, ``rejected`` (a guardrail) or
``input-required`` (a tool call waits for approval: the status message lists the calls in a
data part ``{"pending": [...]}``; answer on the same task with a data part
``{"approvals": {call_id: true|false}}``, or the text ``approve``/``reject`` for all). With
storage the tasks are the stored runs (:class:`~vivace.a2a.tasks.RunTaskStore`): they survive
a restart and every worker sees them; without, they live in this process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ..agent.host import DirectHost, RunHost

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["DirectHost", "RunHost", "a2a_app", "a2a_routes", "agent_card", "request_handler"]

PROTOCOL_VERSION = "1.0"


def agent_card(agent: Agent[Any, Any], url: str, *, bearer: bool = False) -> Any:
    """The A2A agent card of ``agent`` served at ``url`` (its JSON-RPC endpoint); with
    ``bearer``, the card says requests need ``Authorization: Bearer <token>``."""
    from a2a.types.a2a_pb2 import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        HTTPAuthSecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )

    from .. import __version__

    text = agent.description or f"The {agent.id} agent."
    card = AgentCard(
        name=agent.id,
        description=text,
        version=__version__,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION)
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[AgentSkill(id=agent.id, name=agent.id, description=text, tags=["vivace"])],
    )
    if bearer:
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer", description="An API key or a JWT: Authorization: Bearer ..."
                )
            )
        )
        requirement = SecurityRequirement()
        requirement.schemes["bearer"].CopyFrom(StringList())
        card.security_requirements.append(requirement)
    return card


def executor(
    agent: Agent[Any, Any],
    host: RunHost | None = None,
    user_of: Callable[[Any], str | None] | None = None,
) -> Any:
    """The ``AgentExecutor`` running ``agent`` for A2A requests (``user_of(call_context)``
    names the caller's user: the runs are theirs)."""
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.tasks import TaskUpdater
    from a2a.types.a2a_pb2 import Part, Task, TaskState, TaskStatus

    from ..agent.session import find_paused
    from ..errors import VivaceError
    from .tasks import approval_message, output_part

    runs: RunHost = host or DirectHost()

    class VivaceExecutor(AgentExecutor):
        async def execute(self, context: Any, event_queue: Any) -> None:
            from a2a.helpers.proto_helpers import get_message_text
            from google.protobuf.json_format import MessageToDict

            message = context.message
            task = context.current_task
            user_id = user_of(context.call_context) if user_of is not None else None
            if task is None:
                task = Task(
                    id=context.task_id,
                    context_id=context.context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                    history=[message],
                )
                await event_queue.enqueue_event(task)
            elif task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
                return  # nothing waits for this message: the task is what it is
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            try:
                if task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
                    # the task store let this caller see the task: answer as the run's owner
                    paused = await find_paused(agent, task.id, await _owner(agent, task.id))
                    try:
                        decisions = _decisions(message, paused.pending, MessageToDict)
                    except Undecided as exc:  # the task keeps waiting, told why
                        pending = [p.to_dict() for p in paused.pending]
                        note = approval_message(pending, task.id, task.context_id, str(exc))
                        await updater.update_status(TaskState.TASK_STATE_INPUT_REQUIRED, note)
                        return
                    owner = paused.user_id
                    stream = agent.aresume_stream(paused, decisions, user_id=owner)
                else:
                    owner = user_id
                    stream = agent.astream(
                        get_message_text(message),
                        run_id=task.id,
                        session_id=task.context_id if agent.storage is not None else None,
                        user_id=owner,
                    )
                session_id = task.context_id if agent.storage is not None else None
                ending: dict[str, Any] = {}
                chunks = 0
                artifact_id = f"{task.id}-output"
                events = runs.run(agent, stream, task.id, owner, session_id).__aiter__()
                first = await events.__anext__()  # the run has started (and is stored)
                # every status and artifact update names the run and its trace
                meta = {"run_id": first.get("run_id"), "trace_id": first.get("trace_id")}
                await updater.update_status(TaskState.TASK_STATE_WORKING, metadata=meta)

                async def all_events() -> AsyncIterator[dict[str, Any]]:
                    yield first
                    async for e in events:
                        yield e

                async for e in all_events():
                    kind = e.get("type")
                    if kind == "text_delta" and e.get("text"):
                        await updater.add_artifact(
                            [Part(text=e["text"])],
                            artifact_id=artifact_id,
                            name="output",
                            metadata=meta,
                            append=chunks > 0,
                            last_chunk=False,
                        )
                        chunks += 1
                    elif kind in ("run_completed", "run_paused", "run_failed", "run_cancelled"):
                        ending = e
            except VivaceError as exc:  # the run could not start (session, ids, resume)
                text = exc.message or type(exc).__name__
                if exc.code == "session_ownership_error":
                    text = f"no session {task.context_id!r}"
                await updater.failed(updater.new_agent_message([Part(text=text)]))
                return
            except StopAsyncIteration:  # no events at all
                await updater.failed(updater.new_agent_message([Part(text="the run ended")]))
                return
            kind = ending.get("type")
            if kind == "run_completed":
                await updater.add_artifact(
                    [output_part(ending.get("output"))],
                    artifact_id=artifact_id,
                    name="output",
                    metadata=meta,
                    last_chunk=True,
                )
                await updater.update_status(TaskState.TASK_STATE_COMPLETED, metadata=meta)
            elif kind == "run_paused":
                pending = list(ending.get("pending") or ())
                await updater.update_status(
                    TaskState.TASK_STATE_INPUT_REQUIRED,
                    approval_message(pending, task.id, task.context_id),
                    metadata=meta,
                )
            elif kind == "run_cancelled":
                await updater.update_status(TaskState.TASK_STATE_CANCELED, metadata=meta)
            else:
                error = ending.get("error") or {}
                msg = updater.new_agent_message([Part(text=error.get("message") or "failed")])
                state = (
                    TaskState.TASK_STATE_REJECTED
                    if ending.get("status") == "blocked"
                    else TaskState.TASK_STATE_FAILED
                )
                await updater.update_status(state, msg, metadata=meta)

        async def cancel(self, context: Any, event_queue: Any) -> None:
            if context.task_id:
                await runs.cancel(agent, context.task_id)

    return VivaceExecutor()


async def _owner(agent: Agent[Any, Any], run_id: str) -> str | None:
    """The user a paused run belongs to (from storage, else this process's paused runs)."""
    if agent.storage is not None:
        from ..agent.session import resolve_storage

        record = await resolve_storage(agent.storage).sessions.get_run(run_id)
        return record.user_id if record is not None else None
    from ..agent.registry import recall_paused

    paused = recall_paused(run_id)
    return paused.user_id if paused is not None else None


def _data_part(value: Any) -> Any:  # kept for callers of the first version
    from .tasks import data_part

    return data_part(value)


_YES = frozenset({"approve", "approved", "yes", "y", "ok", "okay"})
_NO = frozenset({"reject", "rejected", "no", "n", "deny", "denied"})


class Undecided(ValueError):
    """The answer to an ``INPUT_REQUIRED`` task does not decide every pending call (the task
    keeps waiting; the message says why)."""


def _decisions(message: Any, pending: list[Any], to_dict: Any) -> dict[str, Any]:
    """Decisions for a paused run's calls from the user's A2A message: a data part
    ``{"approvals": {call id: true | false}}`` naming every pending call, or a text that is
    one word of approval (``approve``, ``yes``, ``ok``...) or of rejection (``reject``,
    ``no``...) for all of them. Anything else raises :class:`Undecided`: a sentence that
    merely starts with "ok" or "yes" must not run a call that needs approval."""
    from ..agent.result import Approve, Reject

    ids = [p.id for p in pending]
    for part in message.parts:
        if part.HasField("data"):
            data = to_dict(part.data)
            approvals = data.get("approvals") if isinstance(data, dict) else None
            if not isinstance(approvals, dict):
                raise Undecided('the data part has no "approvals" object')
            unknown = [k for k in approvals if k not in ids]
            missing = [k for k in ids if k not in approvals]
            bad = [k for k, v in approvals.items() if k in ids and not isinstance(v, bool)]
            if unknown or missing or bad:
                problems = []
                if unknown:
                    problems.append(f"calls that are not pending: {unknown}")
                if missing:
                    problems.append(f"no decision for: {missing}")
                if bad:
                    problems.append(f"decisions that are not true or false: {bad}")
                raise Undecided("approvals name " + "; ".join(problems) + f"; pending: {ids}")
            return {k: Approve() if approvals[k] else Reject() for k in ids}
    text = " ".join(p.text for p in message.parts if p.HasField("text"))
    word = text.strip().strip(".!").strip().casefold()
    if word in _YES:
        return dict.fromkeys(ids, Approve())
    if word in _NO:
        return {c: Reject("rejected") for c in ids}
    raise Undecided(f"reply approve or reject (got {text.strip()[:80]!r})")


def task_store(agent: Agent[Any, Any], **options: Any) -> Any:
    """Where ``agent``'s tasks are kept: its stored runs with storage
    (:class:`~vivace.a2a.tasks.RunTaskStore`), else the SDK's in-memory store."""
    if agent.storage is not None:
        from .tasks import RunTaskStore

        return RunTaskStore(agent, **options)
    from a2a.server.tasks import InMemoryTaskStore

    return InMemoryTaskStore()


def request_handler(
    agent: Agent[Any, Any],
    card: Any,
    *,
    host: RunHost | None = None,
    store: Any = None,
    user_of: Callable[[Any], str | None] | None = None,
) -> Any:
    """The SDK's ``DefaultRequestHandler`` for ``agent`` (tasks in ``store``, default
    :func:`task_store`)."""
    from a2a.server.request_handlers import DefaultRequestHandler

    runs: RunHost = host or DirectHost()

    class Handler(DefaultRequestHandler):
        async def on_subscribe_to_task(  # type: ignore[override]
            self, params: Any, context: Any
        ) -> AsyncIterator[Any]:
            """``SubscribeToTask``: the SDK's for a task running here; for one running on
            another worker, its current state, then its run's events read from the server's
            event log (storage-backed with several workers) until it ends or waits."""
            if await self._active_task_registry.get(params.id) is not None:
                async for event in super().on_subscribe_to_task(params, context):
                    yield event
                return
            async for event in _follow_elsewhere(self.task_store, runs, params.id, context):
                yield event

    return Handler(
        agent_executor=executor(agent, runs, user_of),
        task_store=store if store is not None else task_store(agent),
        agent_card=card,
        # a task parked for input is rebuilt from storage when answered
        interrupted_task_timeout=300.0 if agent.storage is not None else None,
    )


async def _follow_elsewhere(
    store: Any, runs: RunHost, task_id: str, context: Any
) -> AsyncIterator[Any]:
    from a2a.types.a2a_pb2 import Artifact, Part, TaskArtifactUpdateEvent, TaskStatusUpdateEvent
    from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError

    from .tasks import ENDED, FINAL

    task = await store.get(task_id, context)
    if task is None:
        raise TaskNotFoundError
    if task.status.state in ENDED:
        if task.status.state in FINAL:
            raise UnsupportedOperationError(message=f"task {task_id} has ended")
        yield task  # waiting for input: nothing runs until it is answered
        return
    yield task
    chunks = 0
    ended = False
    trace = task.metadata["trace_id"] if "trace_id" in task.metadata else None  # noqa: SIM401 (a Struct has no .get)
    meta = {"run_id": task_id, "trace_id": trace} if trace else None
    async for e in runs.follow(task_id):
        kind = e.get("type")
        if kind == "text_delta" and e.get("text"):
            yield TaskArtifactUpdateEvent(
                task_id=task_id,
                context_id=task.context_id,
                artifact=Artifact(
                    artifact_id=f"{task_id}-output",
                    name="output",
                    parts=[Part(text=e["text"])],
                    metadata=meta,
                ),
                append=chunks > 0,
                last_chunk=False,
            )
            chunks += 1
        elif kind in ("run_completed", "run_paused", "run_failed", "run_cancelled"):
            ended = True
            break
    if not ended:
        return
    final = await store.get(task_id, context)  # the stored run, now ended
    if final is None:
        return
    for artifact in final.artifacts:
        yield TaskArtifactUpdateEvent(
            task_id=task_id,
            context_id=final.context_id,
            artifact=artifact,
            last_chunk=True,
        )
    yield TaskStatusUpdateEvent(
        task_id=task_id, context_id=final.context_id, status=final.status, metadata=final.metadata
    )


def a2a_routes(agent: Agent[Any, Any], url: str, *, task_store: Any = None) -> list[Any]:
    """Starlette routes serving ``agent`` over A2A: the card at
    ``/.well-known/agent-card.json`` and JSON-RPC at ``/``; ``url`` is where clients reach
    the JSON-RPC endpoint (written into the card)."""
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes

    card = agent_card(agent, url)
    handler = request_handler(agent, card, store=task_store)
    return [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/")]


def a2a_app(agent: Agent[Any, Any], url: str, *, task_store: Any = None) -> Any:
    """A Starlette app serving ``agent`` over A2A (see :func:`a2a_routes`)."""
    from starlette.applications import Starlette

    return Starlette(routes=a2a_routes(agent, url, task_store=task_store))
