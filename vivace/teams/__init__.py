"""Teams: a leader agent and its members, in one of four modes.

.. code-block:: python

    from vivace import Agent
    from vivace.teams import Team

    team = Team(members=[researcher, writer], mode="coordinate", model="openai/gpt-4o")
    team.run("Write a short note on solar panels.")

* ``route`` - the leader picks one member; that member's answer is the team's answer.
* ``coordinate`` - the leader delegates to members (as tools), reads results, answers.
* ``broadcast`` - every member works on the task in parallel; the leader combines them.
* ``tasks`` - the leader keeps a task list in session state and works through it.

A team is an :class:`~vivace.Agent` (served, stored, streamed and resumed like one). Its
``max_steps`` and ``max_depth`` bound the whole team run: model requests of the leader and
of every member (at any depth) share one budget. Usage sums over all members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .team import TEAM_MODES, Team

__all__ = ["TEAM_MODES", "Team"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import team

        value = getattr(team, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vivace.teams' has no attribute {name!r}")
