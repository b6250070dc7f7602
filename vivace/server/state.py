"""What route handlers share, kept on the Starlette app's ``app.state`` (Starlette's own style).

:class:`~vivace.server.app.VivaceApp` sets, once, when it builds its Starlette app:

==========================  ==================================================================
``app.state.agents``        ``dict[str, Agent]`` by id
``app.state.storage``       the server's :class:`~vivace.storage.Storage` (or ``None``)
``app.state.event_log``     the :class:`~vivace.server.sse.EventLog` runs write their events to
``app.state.runs``          the :class:`~vivace.server.runs.LiveRuns` of this process
``app.state.auth``          the auth object (:mod:`vivace.server.auth`)
``app.state.settings``      :class:`Settings` (limits, media types, title...)
``app.state.idempotency``   the :class:`~vivace.server.idempotency.RecentRuns` of this process
``app.state.studio``        the :class:`~vivace.server.studio.StudioTracing` (Studio on), else
                            ``None``
==========================  ==================================================================

Handlers read them through the small typed helpers below (``agent(request, id)``,
``require_storage(request)``...), so a handler is a plain module-level function of the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import TRACE_SCOPE_KEY, HTTPError

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..agent import Agent
    from .auth import Principal
    from .idempotency import RecentRuns
    from .runs import LiveRuns
    from .sse import EventLog

__all__ = [
    "Settings",
    "agent",
    "agents",
    "event_log",
    "live_runs",
    "model_override_allowed",
    "principal",
    "recent_runs",
    "request_trace_id",
    "require_storage",
    "settings",
    "storage",
]


@dataclass(slots=True)
class Settings:
    """Server settings that handlers read (``request.app.state.settings``)."""

    max_body_bytes: int
    allowed_media_types: tuple[str, ...]
    title: str = "Vivace"
    docs: bool = True
    model_override: bool | None = None  # a run's own `model`: everyone / nobody / admins
    cache: dict[str, Any] = field(default_factory=dict)  # values computed once (agent infos...)


def agents(request: Request) -> dict[str, Agent]:
    return request.app.state.agents


def agent(request: Request, agent_id: str, *, param: str = "agent_id") -> Agent:
    """The agent ``agent_id``, or 404 ``agent_not_found``."""
    found = request.app.state.agents.get(agent_id)
    if found is None:
        code = "model_not_found" if param == "model" else "agent_not_found"
        raise HTTPError(404, code, f"no agent {agent_id!r}", param=param)
    return found


def storage(request: Request) -> Any:
    """The server's storage, or ``None``."""
    return request.app.state.storage


def require_storage(request: Request) -> Any:
    """The server's storage, or 404 ``storage_not_configured``."""
    found = request.app.state.storage
    if found is None:
        raise HTTPError(
            404, "storage_not_configured", "this server has no storage (sessions are off)"
        )
    return found


def event_log(request: Request) -> EventLog:
    return request.app.state.event_log


def live_runs(request: Request) -> LiveRuns:
    return request.app.state.runs


def recent_runs(request: Request) -> RecentRuns:
    return request.app.state.idempotency


def settings(request: Request) -> Settings:
    return request.app.state.settings


def request_trace_id(request: Request) -> str | None:
    """The request's trace id (the caller's ``traceparent``, else a new one), or None."""
    context = request.scope.get(TRACE_SCOPE_KEY)
    return None if context is None else context[0]


def model_override_allowed(request: Request, who: Principal) -> bool:
    """May ``who`` choose the model of a run (``"model"`` in the run request)? The server's
    setting (``VivaceApp(model_override=)``): True for anyone allowed to run, False for
    nobody, None (default) for admins - and everyone is one while the server is open to
    localhost only (``vivace dev``)."""
    allowed = request.app.state.settings.model_override
    return who.admin if allowed is None else allowed


def principal(request: Request) -> Principal:
    """Who is calling (set by the route table before the handler runs; routes with a scope)."""
    return request.state.principal
