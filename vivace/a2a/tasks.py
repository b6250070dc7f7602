"""A2A tasks backed by Vivace's stored runs: a task *is* a run of the agent (task id = run
id, context id = session id), so tasks survive a restart and every worker sharing the storage
sees them - with nothing stored twice.

:class:`RunTaskStore` implements the ``a2a-sdk`` ``TaskStore`` interface:

* While this worker runs a task, the SDK's live ``Task`` (with its streamed artifact chunks)
  is held here (``save``) and served as is.
* Once it ends or waits for input, and on any other worker, the task is rebuilt from the run
  record (:func:`task_from_run`): status from the run status (``running`` -> working,
  ``paused`` -> input-required with the pending calls, ``completed`` -> completed with the
  ``output`` artifact, ``failed``/``incomplete`` -> failed, ``cancelled`` -> canceled,
  ``blocked`` -> rejected), history from the run's user and assistant text.
* A cancel the SDK records for a task that is not live here reaches the run through storage:
  a running run gets a cancel request (the worker running it stops it), a paused run is
  closed as ``cancelled``.
* Runs of other agents and other users' runs read as unknown tasks.

Tasks that ended before their run was stored (e.g. refused at start) are kept in-process
only (the last :data:`MAX_UNSTORED`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from a2a.server.tasks import InMemoryTaskStore, TaskStore
from a2a.types.a2a_pb2 import (
    Artifact,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)

from ..compact_json import replace_lone_surrogates
from ..identifiers import is_identifier

if TYPE_CHECKING:
    from a2a.server.context import ServerCallContext

    from ..agent import Agent
    from ..storage import RunRecord

__all__ = ["ENDED", "FINAL", "MAX_LISTED_SESSIONS", "RunTaskStore", "data_part", "task_from_run"]

MAX_UNSTORED = 1000
MAX_LISTED_SESSIONS = 200
"""``ListTasks`` without a ``contextId`` looks at this many of the agent's most recently
active sessions (of the caller)."""

_STATES = {
    "running": TaskState.TASK_STATE_WORKING,
    "paused": TaskState.TASK_STATE_INPUT_REQUIRED,
    "completed": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "incomplete": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
    "blocked": TaskState.TASK_STATE_REJECTED,
}
ENDED = frozenset(  # a task in these states has no live run: its stored run says it all
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
        TaskState.TASK_STATE_INPUT_REQUIRED,
        TaskState.TASK_STATE_AUTH_REQUIRED,
    }
)


FINAL = ENDED - {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}


def data_part(value: Any) -> Part:
    """A JSON value as an A2A data part."""
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import ParseDict

    data = struct_pb2.Value()
    ParseDict(json.loads(json.dumps(value, default=str)), data)
    return Part(data=data, media_type="application/json")


def output_part(output: Any) -> Part:
    from ..tools.tool import result_to_content

    content = result_to_content(output)
    return (
        Part(text=replace_lone_surrogates(content))
        if isinstance(content, str)
        else data_part(content)
    )


def approval_message(
    pending: list[dict[str, Any]], task_id: str, context_id: str, problem: str = ""
) -> Message:
    """The input-required status message: what waits, and how to answer (after ``problem``,
    what was wrong with the last answer, if any)."""
    names = ", ".join(str(p.get("name")) for p in pending)
    ask = f"Approval needed for: {names}. Reply approve or reject."
    return Message(
        message_id=f"{task_id}-input",
        role=Role.ROLE_AGENT,
        task_id=task_id,
        context_id=context_id,
        parts=[
            Part(text=f"{problem} {ask}" if problem else ask),
            data_part({"pending": pending}),
        ],
    )


def task_from_run(record: RunRecord) -> Task:
    """The A2A task a stored run is (see the module docs)."""
    run_id, context_id = record.run_id, record.session_id
    status = TaskStatus(state=_STATES.get(record.status, TaskState.TASK_STATE_FAILED))
    status.timestamp.FromNanoseconds(int(record.updated_at * 1e9))
    if record.status == "paused":
        pending = (record.paused or {}).get("pending") or []
        status.message.CopyFrom(approval_message(pending, run_id, context_id))
    elif record.status in ("failed", "incomplete", "blocked"):
        error = record.error or {}
        text = error.get("message") or (
            "the run's worker stopped" if record.status == "incomplete" else record.status
        )
        status.message.CopyFrom(
            Message(
                message_id=f"{run_id}-status",
                role=Role.ROLE_AGENT,
                task_id=run_id,
                context_id=context_id,
                parts=[Part(text=replace_lone_surrogates(str(text)))],
            )
        )
    task = Task(id=run_id, context_id=context_id, status=status)
    meta = {"run_id": run_id, "trace_id": record.trace_id} if record.trace_id else None
    if meta:  # the run's trace, to find it in the Studio or a tracing backend
        task.metadata.update(meta)
    if record.status == "completed":
        task.artifacts.append(
            Artifact(
                artifact_id=f"{run_id}-output",
                name="output",
                parts=[output_part(record.output)],
                metadata=meta,
            )
        )
    for i, m in enumerate(record.messages):
        parts = _parts(m)
        if parts and m.role in ("user", "assistant"):
            task.history.append(
                Message(
                    message_id=f"{run_id}-{i}",
                    role=Role.ROLE_USER if m.role == "user" else Role.ROLE_AGENT,
                    task_id=run_id,
                    context_id=context_id,
                    parts=parts,
                )
            )
    return task


def _parts(message: Any) -> list[Part]:
    """A message's text as A2A parts (tool calls and results stay out of the history)."""
    from ..messages import TextPart

    return [
        Part(text=replace_lone_surrogates(p.text))
        for p in message.parts
        if isinstance(p, TextPart) and p.text
    ]


class RunTaskStore(TaskStore):
    """A2A tasks of ``agent`` read from its stored runs (see the module docs).

    Args:
        agent: The agent served (it must have storage).
        can_see: ``(context, owner user id) -> bool``: may the caller see a run of this
            owner (the server passes its principal's rule; default: yes).
        user_of: ``context -> user id | None``: the caller's user, for listing its sessions.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        can_see: Callable[[ServerCallContext, str | None], bool] | None = None,
        user_of: Callable[[ServerCallContext], str | None] | None = None,
    ) -> None:
        from ..agent.session import resolve_storage

        if agent.storage is None:
            raise ValueError("RunTaskStore needs an agent with storage")
        self.agent = agent
        self.sessions = resolve_storage(agent.storage).sessions
        self._can_see = can_see
        self._user_of = user_of
        self._live: dict[str, tuple[Task, str | None]] = {}
        self._unstored: OrderedDict[str, tuple[Task, str | None]] = OrderedDict()

    def _visible(self, context: ServerCallContext, owner: str | None) -> bool:
        return self._can_see is None or self._can_see(context, owner)

    def _user(self, context: ServerCallContext) -> str | None:
        return self._user_of(context) if self._user_of is not None else None

    async def save(self, task: Task, context: ServerCallContext) -> None:
        copy = Task()
        copy.CopyFrom(task)
        state = task.status.state
        live = self._live.get(task.id)
        if live is None and state == TaskState.TASK_STATE_CANCELED:
            await self._cancel_stored(task.id)  # running elsewhere, or parked for input
            return
        owner = live[1] if live is not None else self._user(context)
        if state in ENDED:  # from now on the stored run is the task
            self._live.pop(task.id, None)
            if await self.sessions.get_run(task.id) is None:
                self._unstored[task.id] = (copy, owner)
                while len(self._unstored) > MAX_UNSTORED:
                    self._unstored.popitem(last=False)
            return
        self._live[task.id] = (copy, owner)

    async def _cancel_stored(self, run_id: str) -> None:
        record = await self.sessions.get_run(run_id)
        if record is None or record.agent_id not in (None, self.agent.id):
            return
        if record.status == "running":
            await self.sessions.request_cancel(run_id)
        elif record.status == "paused":
            from ..errors import VivaceError

            try:
                claimed = await self.sessions.resume_run(run_id, user_id=record.user_id)
            except VivaceError:  # resumed meanwhile by someone else
                return
            claimed.status = "cancelled"
            claimed.paused = None
            claimed.updated_at = time.time()
            await self.sessions.finish_run(claimed)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        live = self._live.get(task_id)
        if live is not None:
            task, owner = live
        else:
            if not is_identifier(task_id):  # no run can have it: not found, not a failure
                return None
            record = await self.sessions.get_run(task_id)
            if record is not None:
                if record.agent_id not in (None, self.agent.id):
                    return None
                task, owner = task_from_run(record), record.user_id
            else:
                kept = self._unstored.get(task_id)
                if kept is None:
                    return None
                task, owner = kept
        if not self._visible(context, owner):
            return None
        out = Task()
        out.CopyFrom(task)
        return out

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        from ..errors import VivaceError

        user = self._user(context)
        sessions = self.sessions
        if params.context_id:
            try:
                session = await sessions.get_session(params.context_id)
            except VivaceError:
                session = None
            ids = [params.context_id] if session is not None else []
        else:
            found = await sessions.list_sessions(
                agent_id=self.agent.id, user_id=user, limit=MAX_LISTED_SESSIONS
            )
            ids = [s.session_id for s in found]
        # the SDK's own filtering, ordering and page tokens, over the runs found
        page = InMemoryTaskStore(owner_resolver=lambda _: "", use_copying=False)
        for session_id in ids:
            for record in await sessions.list_runs(session_id):
                if record.agent_id not in (None, self.agent.id):
                    continue
                if not self._visible(context, record.user_id):
                    continue
                live = self._live.get(record.run_id)
                await page.save(live[0] if live is not None else task_from_run(record), context)
        return await page.list(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        """Tasks are runs: delete them with their session (``DELETE /sessions/{id}``)."""
