"""An agent served over A2A 1.0 (JSON-RPC), on the official ``a2a-sdk`` server parts.

:func:`a2a_app` gives a Starlette app with the agent card at
``/.well-known/agent-card.json`` and the JSON-RPC methods (``SendMessage``,
``SendStreamingMessage``, ``GetTask``, ``CancelTask``, ``SubscribeToTask``, ``ListTasks``)
at ``/``. A task is one run (its ``contextId`` is the session when the agent has storage):
``submitted`` -> ``working`` -> ``completed`` (the output as an artifact; streamed text as
artifact chunks first), ``failed``, ``canceled``, ``rejected`` (a guardrail) or
``input-required`` (a tool call waits for approval: the status message lists the calls in a
data part ``{"pending": [...]}``; answer on the same task with a data part
``{"approvals": {call_id: true|false}}``, or the text ``approve``/``reject`` for all).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["a2a_app", "a2a_routes", "agent_card"]

PROTOCOL_VERSION = "1.0"


def agent_card(agent: Agent[Any, Any], url: str) -> Any:
    """The A2A agent card of ``agent`` served at ``url`` (its JSON-RPC endpoint)."""
    from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill

    from .. import __version__

    text = agent.description or f"The {agent.id} agent."
    return AgentCard(
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


def _executor(agent: Agent[Any, Any]) -> Any:
    from a2a.helpers.proto_helpers import get_message_text, new_task_from_user_message
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.tasks import TaskUpdater
    from a2a.types.a2a_pb2 import Part, TaskState
    from google.protobuf.json_format import MessageToDict

    from ..agent.events import TextDelta
    from ..tools.tool import result_to_content

    class VivaceExecutor(AgentExecutor):
        def __init__(self) -> None:
            self.runs: dict[str, str] = {}  # task id -> live run id
            self.paused: dict[str, Any] = {}  # task id -> paused run (dict) waiting for input

        async def execute(self, context: Any, event_queue: Any) -> None:
            message = context.message
            task = context.current_task
            if task is None:
                task = new_task_from_user_message(message)
                await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            paused = self.paused.pop(task.id, None)
            if paused is not None:
                decisions = _decisions(message, paused, MessageToDict)
                stream = agent.aresume_stream(paused, decisions)
            else:
                stream = agent.astream(
                    get_message_text(message),
                    session_id=task.context_id if agent.storage is not None else None,
                )
            artifact_id = f"{task.id}-output"
            chunks = 0
            try:
                async for e in stream:
                    if task.id not in self.runs:
                        self.runs[task.id] = stream.run_id or ""
                    if type(e) is TextDelta and e.text:
                        await updater.add_artifact(
                            [Part(text=e.text)],
                            artifact_id=artifact_id,
                            name="output",
                            append=chunks > 0,
                            last_chunk=False,
                        )
                        chunks += 1
            finally:
                self.runs.pop(task.id, None)
            result = stream.result
            assert result is not None
            if result.status == "completed":
                output = result_to_content(result.output)
                part = Part(text=output) if isinstance(output, str) else _data_part(output)
                await updater.add_artifact(
                    [part], artifact_id=artifact_id, name="output", last_chunk=True
                )
                await updater.complete()
            elif result.status == "paused":
                assert result.paused is not None
                self.paused[task.id] = result.paused.to_dict()
                pending = [c.to_dict() for c in result.pending]
                names = ", ".join(c.name for c in result.pending)
                await updater.requires_input(
                    updater.new_agent_message(
                        [
                            Part(text=f"Approval needed for: {names}. Reply approve or reject."),
                            _data_part({"pending": pending}),
                        ]
                    )
                )
            elif result.status == "cancelled":
                await updater.cancel()
            else:
                error = result.error.message if result.error is not None else result.status
                msg = updater.new_agent_message([Part(text=error)])
                if result.status == "blocked":
                    await updater.reject(msg)
                else:
                    await updater.failed(msg)

        async def cancel(self, context: Any, event_queue: Any) -> None:
            run_id = self.runs.get(context.task_id or "")
            if run_id:
                agent.cancel(run_id)
            self.paused.pop(context.task_id or "", None)
            task = context.current_task
            if task is not None:
                updater = TaskUpdater(event_queue, task.id, task.context_id)
                await updater.update_status(TaskState.TASK_STATE_CANCELED)

    return VivaceExecutor()


def _data_part(value: Any) -> Any:
    from a2a.types.a2a_pb2 import Part
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import ParseDict

    data = struct_pb2.Value()
    ParseDict(json.loads(json.dumps(value)), data)
    return Part(data=data, media_type="application/json")


def _decisions(message: Any, paused: dict[str, Any], to_dict: Any) -> dict[str, Any]:
    """Decisions for a paused run's calls from the user's A2A message."""
    from ..agent.result import Approve, Reject

    pending = [p["id"] for p in paused.get("pending", ())]
    for part in message.parts:
        if part.HasField("data"):
            data = to_dict(part.data)
            approvals = data.get("approvals") if isinstance(data, dict) else None
            if isinstance(approvals, dict):
                out: dict[str, Any] = {
                    k: Approve() if v is True else Reject() for k, v in approvals.items()
                }
                for call_id in pending:
                    out.setdefault(call_id, Reject("no decision given"))
                return out
    text = " ".join(p.text for p in message.parts if p.HasField("text")).strip().lower()
    yes = text.startswith(("approve", "yes", "ok"))
    return {c: Approve() if yes else Reject(text or "rejected") for c in pending}


def a2a_routes(agent: Agent[Any, Any], url: str, *, task_store: Any = None) -> list[Any]:
    """Starlette routes serving ``agent`` over A2A: the card at
    ``/.well-known/agent-card.json`` and JSON-RPC at ``/``; ``url`` is where clients reach
    the JSON-RPC endpoint (written into the card)."""
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore

    card = agent_card(agent, url)
    handler = DefaultRequestHandler(
        agent_executor=_executor(agent),
        task_store=task_store if task_store is not None else InMemoryTaskStore(),
        agent_card=card,
    )
    return [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/")]


def a2a_app(agent: Agent[Any, Any], url: str, *, task_store: Any = None) -> Any:
    """A Starlette app serving ``agent`` over A2A (see :func:`a2a_routes`)."""
    from starlette.applications import Starlette

    return Starlette(routes=a2a_routes(agent, url, task_store=task_store))
