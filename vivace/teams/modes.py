"""The leader's tools per team mode: members as tools, ``broadcast``, and the task list."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from ..agent.agent import Agent
from ..agent.as_tool import TASK_SCHEMA, AgentTool, validate_task
from ..errors import UserError
from ..messages import ToolCallPart
from ..tools.context import RunContext
from ..tools.tool import BaseTool, ModelRetry, Tool, ToolArgumentsError, ToolResume, ToolSuspended
from ..tools.tool import result_to_content as to_json

if TYPE_CHECKING:
    from ..models.base import ToolDefinition
    from .team import Team

__all__ = ["BroadcastTool", "RunTaskTool", "mode_tools"]

TASKS_KEY = "team_tasks"
TASK_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


def member_tool(member: Any, team: Team, stop_after: bool = False) -> BaseTool:
    """A member as a tool of the leader (an :class:`AgentTool` for agents and teams)."""
    if isinstance(member, Agent):
        return AgentTool(member, session=team.member_session, stop_after=stop_after)
    make = getattr(member, "as_tool", None)
    if make is None:
        raise UserError(f"team member {member!r} is not an Agent and has no as_tool()")
    t = make(stop_after=stop_after) if stop_after else make()
    if not hasattr(t, "run"):
        raise UserError(f"{member!r}.as_tool() must return a tool with run(task, ctx, path)")
    return t


def mode_tools(team: Team) -> list[BaseTool]:
    mode = team.mode
    members = [member_tool(m, team, stop_after=mode == "route") for m in team.members]
    if mode in ("route", "coordinate"):
        return members
    if mode == "broadcast":
        return [BroadcastTool(members)]
    return [*_task_list_tools(members), RunTaskTool(members)]


def _split_decisions(decisions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"member/call": d}`` -> ``{member: {call: d}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, d in decisions.items():
        head, _, rest = key.partition("/")
        out.setdefault(head, {})[rest] = d
    return out


def _prefixed(prefix: str, pending: list[ToolCallPart]) -> list[ToolCallPart]:
    return [ToolCallPart(f"{prefix}/{p.id}", p.name, p.arguments, p.meta) for p in pending]


class _TaskArgTool(BaseTool):
    """Shared parts of the mode tools that take ``{"task"}``-style JSON arguments."""

    emits_events = True
    __slots__ = ("_definition", "members")

    def __init__(self, members: list[BaseTool]) -> None:
        self.members = members
        self.requires_approval = False
        self.timeout = None
        self.stop_after = False
        self.max_retries = None
        self.strict = None
        self._definition: ToolDefinition | None = None


class BroadcastTool(_TaskArgTool):
    """``broadcast(task)``: every member works on ``task`` at once; answers by member."""

    __slots__ = ()

    def __init__(self, members: list[BaseTool]) -> None:
        super().__init__(members)
        self.name = "broadcast"

    def definition(self) -> ToolDefinition:
        d = self._definition
        if d is None:
            from ..models.base import ToolDefinition

            names = ", ".join(m.name for m in self.members)
            d = self._definition = ToolDefinition(
                "broadcast",
                f"Send the task to every member ({names}) at once; returns each one's answer.",
                TASK_SCHEMA,
            )
        return d

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        return validate_task(arguments)

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        assert ctx is not None
        task = arguments["task"]
        resume = ctx.resume
        state = resume.state if resume is not None else {}
        answers: dict[str, Any] = dict(state.get("done") or {})
        held: dict[str, Any] = state.get("held") or {}
        decisions = _split_decisions(resume.decisions) if resume is not None else {}
        waiting: dict[str, ToolSuspended] = {}

        async def one(t: BaseTool) -> None:
            if t.name in answers:
                return
            sub_resume = None
            if t.name in held:
                sub_resume = ToolResume(held[t.name], decisions.get(t.name, {}))
            sub = ctx.for_tool_call(ctx.tool_call_id or "", ctx.retry, sub_resume)
            try:
                answers[t.name] = to_json(await t.run(task, sub))  # type: ignore[attr-defined]
            except ToolSuspended as exc:
                waiting[t.name] = exc
            except Exception as exc:
                answers[t.name] = {"error": getattr(exc, "message", None) or str(exc)}

        await asyncio.gather(*(one(t) for t in self.members))
        if waiting:
            pending: list[ToolCallPart] = []
            for name, exc in waiting.items():
                pending += _prefixed(name, exc.pending)
            raise ToolSuspended(
                pending, {"done": answers, "held": {n: e.state for n, e in waiting.items()}}
            )
        return {t.name: answers[t.name] for t in self.members if t.name in answers}


def _tasks(ctx: RunContext[Any]) -> list[dict[str, Any]]:
    tasks = ctx.session_state.get(TASKS_KEY)
    if not isinstance(tasks, list):
        tasks = ctx.session_state[TASKS_KEY] = []
    return tasks


def _find(ctx: RunContext[Any], task_id: str) -> dict[str, Any]:
    for t in _tasks(ctx):
        if t.get("id") == str(task_id):
            return t
    known = ", ".join(t["id"] for t in _tasks(ctx)) or "none"
    raise ModelRetry(f"no task {task_id!r}; tasks: {known}")


def _task_list_tools(members: list[BaseTool]) -> list[BaseTool]:
    names = [m.name for m in members]

    def add_task(
        ctx: RunContext[Any],
        title: str,
        assignee: str,
        depends_on: list[str] | None = None,
    ) -> dict[str, Any]:
        """Add a task to the team's task list.

        Args:
            title: What to do, self-contained (the member sees only this and the results
                of the tasks it depends on).
            assignee: The member who does it.
            depends_on: Ids of tasks whose results this one needs.
        """
        if assignee not in names:
            raise ModelRetry(f"no member {assignee!r}; members: {', '.join(names)}")
        tasks = _tasks(ctx)
        for dep in depends_on or ():
            _find(ctx, dep)
        task = {
            "id": str(len(tasks) + 1),
            "title": title,
            "assignee": assignee,
            "depends_on": [str(d) for d in depends_on or ()],
            "status": "pending",
            "result": None,
        }
        tasks.append(task)
        return task

    def update_task(
        ctx: RunContext[Any], task_id: str, status: str, result: str | None = None
    ) -> dict[str, Any]:
        """Set a task's status (pending, in_progress, completed, failed, cancelled).

        Args:
            task_id: The task's id.
            status: Its new status.
            result: Its result or a note (optional).
        """
        if status not in TASK_STATUSES:
            raise ModelRetry(f"status must be one of {', '.join(TASK_STATUSES)}")
        task = _find(ctx, task_id)
        task["status"] = status
        if result is not None:
            task["result"] = result
        return task

    def list_tasks(ctx: RunContext[Any]) -> list[dict[str, Any]]:
        """The team's task list with each task's status and result."""
        return _tasks(ctx)

    return [Tool(add_task), Tool(update_task), Tool(list_tasks)]


class RunTaskTool(_TaskArgTool):
    """``run_task(task_id)``: the task's member does it; status and result are recorded."""

    __slots__ = ()

    def __init__(self, members: list[BaseTool]) -> None:
        super().__init__(members)
        self.name = "run_task"

    def definition(self) -> ToolDefinition:
        d = self._definition
        if d is None:
            from ..models.base import ToolDefinition

            d = self._definition = ToolDefinition(
                "run_task",
                "Have a task's member do it now; returns the task with its result.",
                {
                    "type": "object",
                    "properties": {"task_id": {"type": "string", "description": "The task."}},
                    "required": ["task_id"],
                    "additionalProperties": False,
                },
            )
        return d

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ToolArgumentsError(f"invalid arguments: not JSON ({exc})") from None
        if not isinstance(arguments, dict) or not isinstance(arguments.get("task_id"), str | int):
            raise ToolArgumentsError('invalid arguments: "task_id" is required')
        return {"task_id": str(arguments["task_id"])}

    async def call(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        assert ctx is not None
        task = _find(ctx, arguments["task_id"])
        member = next((m for m in self.members if m.name == task["assignee"]), None)
        if member is None:
            raise ModelRetry(f"task {task['id']} has no known assignee")
        if task["status"] == "completed" and ctx.resume is None:
            return task
        prompt = task["title"]
        inputs = [_find(ctx, d) for d in task.get("depends_on") or ()]
        if inputs:
            prompt += "\n\nResults you can use:\n" + "\n".join(
                f"- {t['title']}: {json.dumps(t['result'])}" for t in inputs
            )
        task["status"] = "in_progress"
        try:
            output = await member.run(prompt, ctx)  # type: ignore[attr-defined]
        except ToolSuspended:
            raise  # stays in_progress until the member is resumed
        except Exception as exc:
            task["status"] = "failed"
            task["result"] = getattr(exc, "message", None) or str(exc)
            return task
        task["status"] = "completed"
        task["result"] = to_json(output)
        return task
