"""A remote A2A agent as a tool or team member: :class:`A2AAgent`.

.. code-block:: python

    from vivace.a2a import A2AAgent

    remote = A2AAgent("http://127.0.0.1:8000/a2a/researcher", name="researcher")
    agent = Agent(model=..., tools=[remote.as_tool()])    # or Team(members=[remote, ...])

Messages are sent with ``SendStreamingMessage``; the remote's streamed text reaches the
caller's stream as ``nested_event``\\ s (``text_delta``); when the remote task needs input
(an approval), the caller's run pauses with the remote's pending calls and resuming it
answers the remote task.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..agent.as_tool import TASK_SCHEMA, tool_name, validate_task
from ..errors import RunError
from ..tools.tool import BaseTool, ToolSuspended, ToolTimeout

if TYPE_CHECKING:
    from ..models.base import ToolDefinition
    from ..tools.context import RunContext

__all__ = ["A2AAgent", "A2ATool"]


class A2AAgent:
    """A remote agent spoken to over A2A 1.0 (``url``: its base URL, where
    ``/.well-known/agent-card.json`` is)."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 300.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = name or "remote_agent"
        self.description = description
        self.headers = dict(headers) if headers else None
        self.timeout = timeout
        self._client: Any = None
        self._loop: Any = None

    def __repr__(self) -> str:
        return f"<A2AAgent {self.name} {self.url}>"

    async def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from a2a.client import ClientConfig, create_client

            try:
                import httpx
            except ImportError:  # pragma: no cover
                httpx = None  # type: ignore[assignment]
            config = ClientConfig(streaming=True)
            if self.headers and httpx is not None:
                config = ClientConfig(
                    streaming=True,
                    httpx_client=httpx.AsyncClient(headers=self.headers, timeout=self.timeout),
                )
            kwargs: dict[str, Any] = {}
            if self.headers:
                kwargs["resolver_http_kwargs"] = {"headers": self.headers}
            self._client = await create_client(self.url, client_config=config, **kwargs)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def as_tool(
        self, name: str | None = None, description: str | None = None, *, stop_after: bool = False
    ) -> A2ATool:
        """This remote agent as a tool (``{"task"}``) of a Vivace agent."""
        return A2ATool(self, name=name, description=description, stop_after=stop_after)

    async def arun(self, task: str) -> Any:
        """Send ``task`` and return the remote's output (text, or data for a data artifact)."""
        from ..tools.context import RunContext

        return await self.as_tool().run(task, RunContext(uuid.uuid4().hex))

    async def send(
        self,
        parts: list[Any],
        *,
        task_id: str | None = None,
        context_id: str | None = None,
        on_text: Any = None,
    ) -> tuple[str, Any, dict[str, Any]]:
        """Send one message; returns ``(state, task, output)`` once the stream ends: the
        final task state name, the task and ``{"text", "data", "pending"}``."""
        from a2a.types.a2a_pb2 import Message, Role, SendMessageRequest
        from google.protobuf.json_format import MessageToDict

        client = await self._get_client()
        message = Message(
            message_id=uuid.uuid4().hex,
            role=Role.ROLE_USER,
            parts=parts,
            task_id=task_id or "",
            context_id=context_id or "",
        )
        state = "TASK_STATE_UNKNOWN"
        task: Any = None
        text: dict[str, str] = {}
        data: Any = None
        pending: list[dict[str, Any]] = []
        async for ev in client.send_message(SendMessageRequest(message=message)):
            kind = ev.WhichOneof("payload") if hasattr(ev, "WhichOneof") else None
            if kind == "task":
                task = ev.task
                state = _state_name(task.status.state)
                for art in task.artifacts:
                    got = _parts_text(art.parts)
                    if got:
                        text[art.artifact_id] = got
            elif kind == "status_update":
                upd = ev.status_update
                state = _state_name(upd.status.state)
                for p in upd.status.message.parts:
                    if p.HasField("data"):
                        d = MessageToDict(p.data)
                        if isinstance(d, dict) and isinstance(d.get("pending"), list):
                            pending = d["pending"]
            elif kind == "artifact_update":
                upd = ev.artifact_update
                art = upd.artifact
                chunk = _parts_text(art.parts)
                for p in art.parts:
                    if p.HasField("data"):
                        data = MessageToDict(p.data)
                if upd.last_chunk:
                    if chunk:
                        text[art.artifact_id] = chunk
                elif chunk:
                    text[art.artifact_id] = (
                        text.get(art.artifact_id, "") if upd.append else ""
                    ) + chunk
                    if on_text is not None:
                        on_text(chunk)
            elif kind == "message":
                chunk = _parts_text(ev.message.parts)
                if chunk:
                    text["message"] = chunk
                state = "TASK_STATE_COMPLETED"
        return state, task, {"text": "".join(text.values()), "data": data, "pending": pending}


def _state_name(state: int) -> str:
    from a2a.types.a2a_pb2 import TaskState

    return str(TaskState.Name(state))


def _parts_text(parts: Any) -> str:
    return "".join(p.text for p in parts if p.HasField("text"))


class A2ATool(BaseTool):
    """A tool that sends its ``task`` to a remote A2A agent."""

    emits_events = True
    __slots__ = ("_definition", "description", "member", "remote")

    def __init__(
        self,
        remote: A2AAgent,
        *,
        name: str | None = None,
        description: str | None = None,
        stop_after: bool = False,
    ) -> None:
        self.remote = remote
        self.member = remote.name
        self.name = tool_name(name or remote.name)
        self.description = description or remote.description
        self.requires_approval = False
        self.timeout = remote.timeout
        self.stop_after = stop_after
        self.max_retries = None
        self.strict = None
        self._definition: ToolDefinition | None = None

    def definition(self) -> ToolDefinition:
        d = self._definition
        if d is None:
            from ..models.base import ToolDefinition

            text = self.description or f"Ask the remote {self.member} agent."
            d = self._definition = ToolDefinition(self.name, text, TASK_SCHEMA)
        return d

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        return validate_task(arguments)

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        if ctx is None:
            from ..tools.context import RunContext

            ctx = RunContext(uuid.uuid4().hex)
        if self.timeout is None:
            return await self.run(arguments["task"], ctx)
        try:
            return await asyncio.wait_for(self.run(arguments["task"], ctx), self.timeout)
        except TimeoutError:
            raise ToolTimeout(
                f"remote agent {self.member!r} timed out after {self.timeout}s"
            ) from None

    async def run(self, task: str, ctx: RunContext[Any], path: list[str] | None = None) -> Any:
        """Send ``task`` (or, on resume, the decisions) and return the remote's output."""
        from a2a.types.a2a_pb2 import Part

        from ..agent.events import NestedEvent, TextDelta
        from .server import _data_part

        head = [*(path or ()), self.member]
        emit = ctx.emit
        call_id = ctx.tool_call_id
        seq = [0]

        def on_text(chunk: str) -> None:
            if emit is not None:
                emit(NestedEvent("", 0, head, call_id, TextDelta(self.member, seq[0], chunk)))
                seq[0] += 1

        resume = ctx.resume
        if resume is not None:
            st = resume.state or {}
            approvals = {
                k: (v is True or type(v).__name__ == "Approve") for k, v in resume.decisions.items()
            }
            parts = [_data_part({"approvals": approvals})]
            state, _, out = await self.remote.send(
                parts, task_id=st.get("task_id"), context_id=st.get("context_id"), on_text=on_text
            )
            task_obj = None
            ids = (st.get("task_id"), st.get("context_id"))
        else:
            state, task_obj, out = await self.remote.send([Part(text=task)], on_text=on_text)
            ids = (task_obj.id, task_obj.context_id) if task_obj is not None else (None, None)
        if state == "TASK_STATE_COMPLETED":
            return out["data"] if out["data"] is not None and not out["text"] else out["text"]
        if state == "TASK_STATE_INPUT_REQUIRED":
            from ..messages import ToolCallPart

            pending = [
                ToolCallPart(p["id"], p.get("name", "?"), p.get("arguments") or {})
                for p in out["pending"]
            ]
            raise ToolSuspended(pending, {"task_id": ids[0], "context_id": ids[1]})
        raise RunError(f"remote agent {self.member} ended with {state}: {out['text']}".strip())
