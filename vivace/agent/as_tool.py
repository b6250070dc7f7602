"""An agent as a tool of another agent: ``agent.as_tool(name=..., description=...)``.

The child run is a real run: it gets its own run id, joins the caller's trace with the
caller's run as ``parent_run_id``, is stored (in its own session, or the caller's with
``session="same"``) when the agent - or the caller - has storage, and its events reach the
caller's stream as :class:`~vivace.agent.events.NestedEvent`\\ s tagged with the member's
path. When the child pauses for an approval the caller pauses too, listing the child's
pending calls (``"<call id>/<child call id>"``); resuming the caller resumes the child.

Delegation limits: a run started through ``as_tool`` sits one level deeper than its caller;
past ``max_depth`` levels the tool answers the model with an error instead of running. A
:class:`~vivace.teams.Team` run also shares one step budget with every run below it (see
:class:`DelegationBudget`).
"""

from __future__ import annotations

import asyncio
import json
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..errors import MaxStepsExceeded, RunError
from ..tools.tool import BaseTool, ModelRetry, ToolArgumentsError, ToolSuspended, ToolTimeout

if TYPE_CHECKING:
    from ..models.base import ToolDefinition
    from ..tools.context import RunContext
    from .agent import Agent

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "AgentTool",
    "DelegationBudget",
    "delegation_budget",
    "delegation_depth",
]

DEFAULT_MAX_DEPTH = 5
BUDGET_KEY = "vivace.delegation_budget"
TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "description": "The request for this agent, with all the context it needs "
            "(it does not see this conversation).",
        }
    },
    "required": ["task"],
    "additionalProperties": False,
}
_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]+")


class DelegationBudget:
    """Limits shared by every run of one delegation tree (a team run and all runs below it).

    ``steps`` counts model requests of the tree so far; ``max_steps`` is its limit and
    ``max_depth`` the deepest delegation allowed. ``owner`` is the run id whose own model
    requests the team counts (runs below are counted by the tool that started them).
    """

    __slots__ = ("max_depth", "max_steps", "owner", "steps")

    def __init__(self, max_steps: int, max_depth: int, owner: str | None = None) -> None:
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.steps = 0
        self.owner = owner

    @property
    def remaining(self) -> int:
        return self.max_steps - self.steps

    def exceeded(self) -> MaxStepsExceeded:
        return MaxStepsExceeded(
            f"the team run reached max_steps={self.max_steps} "
            "(model requests of the leader and all members together)",
            max_steps=self.max_steps,
        )


# (budget, depth) of the delegation the current code runs in; set around a child run
_FRAME: ContextVar[tuple[DelegationBudget | None, int] | None] = ContextVar(
    "vivace_delegation", default=None
)


def delegation_depth() -> int:
    """How many delegations deep the current code runs (0 at the top)."""
    frame = _FRAME.get()
    return 0 if frame is None else frame[1]


def delegation_budget(ctx: RunContext[Any]) -> DelegationBudget | None:
    """The step budget of the delegation tree ``ctx``'s run belongs to, or None (no team).

    A team run creates it (its agent has ``delegation_limits()``); a run below a team run
    shares the team's. Created on first use in a run, starting from the run's usage so far
    (so a resumed team run keeps counting where it paused).
    """
    md = ctx.metadata
    budget = md.get(BUDGET_KEY)
    if budget is None:
        frame = _FRAME.get()
        if frame is not None and frame[0] is not None:
            budget = frame[0]
        else:
            limits = getattr(ctx.agent, "delegation_limits", None)
            if limits is None:
                return None
            max_steps, max_depth = limits()
            budget = DelegationBudget(max_steps, max_depth, ctx.run_id)
            usage = ctx.usage
            if usage is not None:
                budget.steps = usage.requests
        md[BUDGET_KEY] = budget
    return budget


def tool_name(name: str) -> str:
    """``name`` made acceptable as a tool name for every provider."""
    return _NAME_OK.sub("_", name).strip("_")[:64] or "agent"


class AgentTool(BaseTool):
    """A tool that runs an agent (see :meth:`vivace.Agent.as_tool`). Arguments: ``{"task"}``."""

    emits_events = True

    __slots__ = (
        "_definition",
        "_stored",
        "agent",
        "description",
        "max_depth",
        "member",
        "session",
        "stream_model",
    )

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str | None = None,
        description: str | None = None,
        session: str = "own",
        stream_model: bool = True,
        requires_approval: bool = False,
        timeout: float | None = None,
        stop_after: bool = False,
        max_retries: int | None = None,
        max_depth: int | None = None,
    ) -> None:
        if session not in ("own", "same"):
            from ..errors import UserError

            raise UserError(f'session must be "own" or "same", not {session!r}')
        self.agent = agent
        self.member = agent.name or name or "agent"
        self.name = tool_name(name or agent.name or "agent")
        self.description = description
        self.session = session
        self.stream_model = stream_model
        self.requires_approval = requires_approval
        self.timeout = timeout
        self.stop_after = stop_after
        self.max_retries = max_retries
        self.max_depth = max_depth
        self.strict = None
        self._definition: ToolDefinition | None = None
        self._stored: tuple[Any, Agent[Any, Any]] | None = None

    def definition(self) -> ToolDefinition:
        d = self._definition
        if d is None:
            from ..models.base import ToolDefinition

            agent = self.agent
            text = self.description or agent.description or f"Ask the {self.member} agent."
            d = self._definition = ToolDefinition(self.name, text, TASK_SCHEMA)
        return d

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        return validate_task(arguments)

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        if ctx is None:  # called outside a run: the agent runs as a top-level run
            import uuid

            from ..tools.context import RunContext

            ctx = RunContext(uuid.uuid4().hex)
        if self.timeout is None:
            return await self.run(arguments["task"], ctx)
        try:
            return await asyncio.wait_for(self.run(arguments["task"], ctx), self.timeout)
        except TimeoutError:
            raise ToolTimeout(f"tool {self.name!r} timed out after {self.timeout}s") from None

    def _agent_for(self, ctx: RunContext[Any]) -> Agent[Any, Any]:
        """The agent to run: with no storage of its own it uses the caller's (a shallow copy,
        made once per storage), so the child run is stored beside its parent."""
        agent = self.agent
        if agent.storage is not None:
            return agent
        caller = ctx.agent
        storage = getattr(caller, "storage", None)
        if storage is None:
            return agent
        stored = self._stored
        if stored is None or stored[0] is not storage:
            import copy

            clone = copy.copy(agent)
            clone.storage = storage
            stored = self._stored = (storage, clone)
        return stored[1]

    async def run(self, task: str, ctx: RunContext[Any], path: list[str] | None = None) -> Any:
        """Run (or resume, when ``ctx.resume`` is set) the agent on ``task`` as a child of
        ``ctx``'s run; forward its events; return its output.

        Raises :class:`~vivace.tools.ToolSuspended` when the child pauses, and an error the
        calling model sees when it fails or a delegation limit is reached.
        """
        from .events import ModelRequestStarted, NestedEvent

        budget = delegation_budget(ctx)
        frame = _FRAME.get()
        depth = (0 if frame is None else frame[1]) + 1
        max_depth = (
            budget.max_depth
            if budget is not None
            else (self.max_depth if self.max_depth is not None else DEFAULT_MAX_DEPTH)
        )
        if depth > max_depth:
            raise ModelRetry(
                f"delegation depth limit ({max_depth}) reached: {self.member} cannot be "
                "asked from here; answer with what you have"
            )
        agent = self._agent_for(ctx)
        max_steps = agent.max_steps
        if budget is not None:
            left = budget.remaining
            if left <= 0:
                raise ModelRetry(f"the team's step limit was reached; {self.member} was not asked")
            max_steps = min(max_steps, left)
        resume = ctx.resume
        counted: dict[str, Any] = {}
        if resume is not None:
            state = resume.state or {}
            counted = state.get("usage") or {}
            stream = agent.aresume_stream(
                state.get("paused") or state["run_id"],
                resume.decisions,
                stream_model=self.stream_model,
                user_id=ctx.user_id,
                max_steps=max_steps,
            )
        else:
            stream = agent.astream(
                task,
                stream_model=self.stream_model,
                session_id=ctx.session_id if self.session == "same" else None,
                user_id=ctx.user_id,
                max_steps=max_steps,
                parent_run_id=ctx.run_id,
                trace_id=ctx.trace_id,
            )
        head = [*(path or ()), self.member]
        emit = ctx.emit
        call_id = ctx.tool_call_id
        token = _FRAME.set((budget, depth))
        try:
            async for e in stream:
                if type(e) is NestedEvent:
                    if emit is not None:
                        emit(NestedEvent("", 0, [*head, *e.path], call_id, e.event))
                    continue
                if budget is not None and type(e) is ModelRequestStarted:
                    budget.steps += 1
                if emit is not None:
                    emit(NestedEvent("", 0, head, call_id, e))
        finally:
            _FRAME.reset(token)
        result = stream.result
        assert result is not None
        usage = ctx.usage
        if usage is not None:
            from ..models.base import Usage

            spent = Usage.from_dict(result.usage.to_dict())
            if counted:
                spent = spent - Usage.from_dict(counted)
            usage += spent
        if result.status == "completed":
            return result.output
        if result.status == "paused":
            assert result.paused is not None
            state = {"run_id": result.run_id, "usage": result.usage.to_dict()}
            if agent.storage is None:
                state["paused"] = result.paused.to_dict()
            raise ToolSuspended(result.paused.pending, state)
        error = result.error
        if isinstance(error, MaxStepsExceeded) and budget is not None and budget.remaining <= 0:
            raise ModelRetry(f"{self.member} stopped: the team's step limit was reached")
        detail = error.message if error is not None else result.status
        raise RunError(f"{self.member} {result.status}: {detail}", run_id=result.run_id)

    def __repr__(self) -> str:
        return f"<AgentTool {self.name} -> {self.agent!r}>"


def validate_task(arguments: str | dict[str, Any]) -> dict[str, Any]:
    """``{"task": str}`` from the model's arguments (JSON text or a dict)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise ToolArgumentsError(f"invalid arguments: not JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise ToolArgumentsError("invalid arguments: expected a JSON object")
    task = arguments.get("task")
    if not isinstance(task, str) or not task.strip():
        raise ToolArgumentsError('invalid arguments: "task" must be a non-empty string')
    extra = set(arguments) - {"task"}
    if extra:
        raise ToolArgumentsError(f"invalid arguments: unknown {', '.join(sorted(extra))}")
    return {"task": task}
