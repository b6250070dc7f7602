"""Where a protocol endpoint's runs run (A2A, AG-UI).

A protocol package starts a run as a :class:`~vivace.agent.agent.RunStream` and hands it to a
:class:`RunHost`: standalone, :class:`DirectHost` drives it in the request's own task; the
Vivace server passes its own host (``vivace.server.protocol_runs.ServerRuns``: live runs and
the event log, so the run is cancellable and followable from any worker).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .agent import Agent, RunStream

__all__ = ["DirectHost", "RunHost"]


class RunHost(Protocol):
    """Where runs run: start them, cancel them, follow ones started elsewhere."""

    def run(
        self,
        agent: Agent[Any, Any],
        stream: RunStream[Any],
        run_id: str,
        user_id: str | None,
        session_id: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Start ``stream`` and yield its events (``RunEvent.to_dict()``) to the end."""
        ...

    async def cancel(self, agent: Agent[Any, Any], run_id: str) -> None:
        """Cancel the run (and wait, briefly, until it has ended)."""
        ...

    def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """The events of a run started elsewhere (another worker), from its first one, as far
        as this host can read them (nothing when it cannot)."""
        ...


class DirectHost:
    """Runs driven in the caller's own task (a protocol app served on its own)."""

    async def run(
        self,
        agent: Agent[Any, Any],
        stream: RunStream[Any],
        run_id: str,
        user_id: str | None,
        session_id: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        async for e in stream:
            yield e.to_dict()

    async def cancel(self, agent: Agent[Any, Any], run_id: str) -> None:
        agent.cancel(run_id)

    async def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        return
        yield  # an async generator that yields nothing
