"""The :class:`Team`: an agent whose tools are its members, run in one of four modes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..agent.agent import Agent
from ..agent.capability import Capability

if TYPE_CHECKING:
    from ..memory import Memory
    from ..models.base import Model, ModelRequest
    from ..storage import Storage
    from ..tools import BaseTool
    from ..tools.context import RunContext

__all__ = ["TEAM_MODES", "Team"]

TEAM_MODES = ("route", "coordinate", "broadcast", "tasks")

_MODE_INSTRUCTIONS = {
    "route": (
        "You lead a team. Pick the ONE member best suited to the request and call its tool "
        "with the request (and any context it needs). Its answer goes to the user as it is, "
        "so call exactly one member and do not answer yourself."
    ),
    "coordinate": (
        "You lead a team. Delegate parts of the request to the members best suited to them "
        "by calling their tools (each call: a self-contained task), read their results, "
        "delegate again if needed, then answer the user yourself."
    ),
    "broadcast": (
        "You lead a team. Call the broadcast tool once with the task: every member works on "
        "it in parallel. Then combine their answers into one reply for the user."
    ),
    "tasks": (
        "You lead a team and work through a task list. Split the request into tasks with "
        "add_task (assign each to a member), run each with run_task (results of the tasks it "
        "depends on are passed along), check the list with list_tasks and fix failures with "
        "update_task or new tasks. When every task is completed (or failed), answer the user "
        "with the combined result."
    ),
}


class Team(Agent[Any, Any]):
    """A leader model and member agents: ``Team(members=[a, b], mode="coordinate", model=...)``.

    Args:
        members: Agents (or teams, or remote agents such as
            :class:`~vivace.a2a.A2AAgent`: anything with ``as_tool()``). Each appears to the
            leader as a tool named after the member, taking a ``task``.
        mode: ``"route"``, ``"coordinate"`` (default), ``"broadcast"`` or ``"tasks"``.
        max_steps: Model requests allowed for the whole team run - the leader's and every
            member's at any depth together. Past it the run fails with
            :class:`~vivace.errors.MaxStepsExceeded`.
        max_depth: How deep delegation may go (1: members may not delegate further).
        member_session: ``"own"`` (each member call is a run in a new session) or
            ``"same"`` (in the team run's session).
        Other arguments are :class:`~vivace.Agent`'s, for the leader.

    The team run's usage includes every member run's; member events stream through the
    team's stream as ``nested_event``\\ s; a member pausing for an approval pauses the team.
    """

    __slots__ = ("_cache", "max_depth", "member_session", "members", "mode")

    def __init__(
        self,
        model: str | Model | Sequence[str | Model] | None = None,
        *,
        members: Sequence[Any],
        mode: str = "coordinate",
        name: str | None = None,
        instructions: str | Callable[..., Any] | None = None,
        tools: Sequence[Any] | None = None,
        max_steps: int = 30,
        max_depth: int = 3,
        member_session: str = "own",
        description: str | None = None,
        output_type: Any = None,
        output_mode: str | None = None,
        deps: Any = None,
        model_settings: dict[str, Any] | None = None,
        tool_retries: int = 2,
        output_retries: int = 2,
        tool_concurrency: int = 8,
        storage: Storage | str | None = None,
        memory: Memory | None = None,
        history_runs: int = 10,
        hooks: Any = None,
        capabilities: Sequence[Capability] | None = None,
    ) -> None:
        if mode not in TEAM_MODES:
            from ..errors import UserError

            raise UserError(f"unknown team mode {mode!r}; modes: {', '.join(TEAM_MODES)}")
        super().__init__(
            model,
            name=name or "team",
            instructions=instructions,
            tools=cast(Any, _TeamTools(self, tools)),
            output_type=output_type,
            output_mode=output_mode,
            max_steps=max_steps,
            hooks=hooks,
            deps=deps,
            model_settings=model_settings,
            tool_retries=tool_retries,
            output_retries=output_retries,
            tool_concurrency=tool_concurrency,
            storage=storage,
            memory=memory,
            history_runs=history_runs,
            description=description,
            capabilities=(_TEAM_CAP, *capabilities) if capabilities else _TEAM_CAPS,
        )
        self.members = members
        self.mode = mode
        self.max_depth = max_depth
        self.member_session = member_session
        self._cache: tuple[list[BaseTool], str] | None = None

    def delegation_limits(self) -> tuple[int, int]:
        """``(max_steps, max_depth)`` of a team run (read by the delegation budget)."""
        return self.max_steps, self.max_depth

    def member_tools(self) -> list[BaseTool]:
        """The tools the leader gets for this team's mode (built once)."""
        return (self._cache or self._build())[0]

    def team_instructions(self) -> str:
        """The mode's instructions and the roster of members (built once)."""
        return (self._cache or self._build())[1]

    def _build(self) -> tuple[list[BaseTool], str]:
        from .modes import mode_tools

        roster = []
        for m in self.members:
            name = getattr(m, "name", None) or "member"
            desc = getattr(m, "description", None)
            roster.append(f"- {name}: {desc}" if desc else f"- {name}")
        notes = _MODE_INSTRUCTIONS[self.mode] + "\n\nMembers:\n" + "\n".join(roster)
        cache = self._cache = (mode_tools(self), notes)
        return cache

    def __repr__(self) -> str:
        names = ", ".join(str(getattr(m, "name", None) or "?") for m in self.members)
        return f"<Team {self.id} mode={self.mode} members=[{names}]>"


class _TeamTools:
    """A team's tools: the leader's own, then the members' (built at the first run)."""

    __slots__ = ("extra", "team")

    def __init__(self, team: Team, extra: Sequence[Any] | None) -> None:
        self.team = team
        self.extra = extra

    def __iter__(self) -> Iterator[Any]:
        if self.extra:
            yield from self.extra
        yield from self.team.member_tools()

    def __bool__(self) -> bool:
        return True


class _TeamCapability(Capability):
    """What makes a team's run a team run: mode instructions and the shared step budget.
    One object for every team (it reads the team from ``ctx.agent``)."""

    __slots__ = ()

    def instructions(self, ctx: RunContext[Any], input: Any) -> str | None:
        team = ctx.agent
        return team.team_instructions() if isinstance(team, Team) else None

    def before_model_request(self, ctx: RunContext[Any], request: ModelRequest) -> None:
        from ..agent.as_tool import delegation_budget

        budget = delegation_budget(ctx)
        if budget is not None and budget.owner == ctx.run_id:
            if budget.steps >= budget.max_steps:
                raise budget.exceeded()
            budget.steps += 1
        return None


_TEAM_CAP = _TeamCapability()
_TEAM_CAPS = (_TEAM_CAP,)
