"""The :class:`VivaceApp`: agents + storage -> one ASGI app (Starlette)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import HTTPError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..agent import Agent
    from .routing import Op
    from .sse import EventLog

__all__ = ["VivaceApp"]

DEFAULT_MAX_BODY = 20 * 1024 * 1024
EVENT_LOG_KINDS = ("memory", "storage")
EVENT_LOG_ENV = "VIVACE_EVENT_LOG"


class VivaceApp:
    """Serve agents over HTTP.

    Args:
        agents: The agents, addressed by ``agent.id`` (their name).
        storage: A :class:`~vivace.storage.Storage` (or a URL string) for sessions, runs and
            memory. Agents without their own storage get this one. ``None``: the
            ``VIVACE_STORAGE_URL`` environment variable when set (``vivace serve`` sets it
            to SQLite under ``.vivace/``), else no storage.
        auth: An auth object (:class:`~vivace.server.auth.APIKeyAuth`,
            :class:`~vivace.server.auth.JWTAuth`...), a list of them, ``None`` (from the
            environment: ``VIVACE_API_KEY``, ``VIVACE_JWT_SECRET``, ``VIVACE_JWT_PUBLIC_KEY``;
            with none set, open to localhost only) or ``False`` (open to everyone).
        cors: ``True`` (any origin), a list of origins, or a dict of
            ``starlette.middleware.cors.CORSMiddleware`` options.
        max_body_bytes: Largest request body accepted (413 above it).
        event_log: Where run events are kept for SSE reconnects: ``"memory"`` (this process
            only), ``"storage"`` (also persisted in ``storage.events``, so a client can
            reconnect to any worker; :class:`~vivace.server.sse.StorageEventLog`) or an
            :class:`~vivace.server.sse.EventLog`. ``None``: the ``VIVACE_EVENT_LOG``
            environment variable (``vivace serve --workers N`` sets ``storage`` for N > 1),
            else ``"memory"``.
        allowed_media_types: Media types accepted in run input (``image/*``-style patterns).

    The object is itself an ASGI app (``uvicorn module:app``); ``.asgi`` is the Starlette app,
    to mount into another app (``fastapi_app.mount("/vivace", app.asgi)``).
    """

    def __init__(
        self,
        agents: Sequence[Agent] | Mapping[str, Agent] = (),
        *,
        storage: Any = None,
        auth: Any = None,
        cors: bool | Sequence[str] | Mapping[str, Any] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        event_log: EventLog | str | None = None,
        allowed_media_types: Sequence[str] | None = None,
        title: str = "Vivace",
        docs: bool = True,
    ) -> None:
        from .inputs import DEFAULT_MEDIA_TYPES

        if isinstance(agents, Mapping):
            self.agents: dict[str, Agent] = dict(agents)
        else:
            self.agents = {}
            for a in agents:
                if a.id in self.agents:
                    from ..errors import UserError

                    raise UserError(f"two agents share the id {a.id!r}: give them distinct names")
                self.agents[a.id] = a
        if storage is None:
            storage = os.environ.get("VIVACE_STORAGE_URL") or None
        if isinstance(storage, str):
            storage = _storage_from_url(storage)
        self.storage = storage
        if storage is not None:
            for a in self.agents.values():
                if a.storage is None:
                    a.storage = storage
        self._auth_arg = auth
        self.auth: Any = None
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        if isinstance(event_log, str) and event_log not in EVENT_LOG_KINDS:
            from ..errors import UserError

            raise UserError(f"event_log must be one of {EVENT_LOG_KINDS} or an EventLog")
        self._event_log = event_log
        self.allowed_media_types = tuple(allowed_media_types or DEFAULT_MEDIA_TYPES)
        self.title = title
        self.docs = docs
        self._asgi: Starlette | None = None
        self._openapi: bytes | None = None
        self.ops: list[Op] = []

    # -- ASGI ----------------------------------------------------------------------------------

    @property
    def asgi(self) -> Starlette:
        """The Starlette application (built on first access)."""
        app = self._asgi
        if app is None:
            app = self._asgi = self._build()
        return app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._asgi
        if app is None:
            app = self.asgi
        await app(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Set up storage at startup and stop live runs and close storage at shutdown.

        Runs automatically when this app is the server's app; when mounting it into another
        app, enter it from that app's lifespan (``async with vivace_app.lifespan(): ...``).
        """
        self.asgi  # noqa: B018 - build routes and the run registry
        setup = getattr(self.storage, "setup", None)
        if setup is not None:
            await setup()
        try:
            yield
        finally:
            await self.runs.shutdown()
            aclose = getattr(self.log, "aclose", None)
            if aclose is not None:  # write the events still buffered
                await aclose()
            close = getattr(self.storage, "close", None)
            if close is not None:
                await close()

    def _build(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        from .auth import check, resolve_auth
        from .errors import install_handlers
        from .middleware import BodyLimit
        from .routes import all_operations
        from .runs import LiveRuns

        self.auth = resolve_auth(self._auth_arg)
        self.log: EventLog = self._make_event_log()
        self.runs = LiveRuns(self.log, sessions_of=self._sessions_of_agent())
        self.ops = all_operations(self)
        routes: list[Any] = []
        for op in self.ops:
            routes.append(Route(op.path, _endpoint(self, op, check), methods=[op.method]))
        if self.docs:
            routes.append(Route("/openapi.json", self._serve_openapi, methods=["GET"]))
            routes.append(Route("/docs", _docs_page, methods=["GET"]))
        middleware = []
        if self.cors:
            from starlette.middleware.cors import CORSMiddleware

            if self.cors is True:
                opts: dict[str, Any] = {"allow_origins": ["*"]}
            elif isinstance(self.cors, Mapping):
                opts = dict(self.cors)
            else:
                opts = {"allow_origins": list(self.cors)}
            opts.setdefault("allow_methods", ["*"])
            opts.setdefault(
                "allow_headers",
                ["authorization", "content-type", "last-event-id", "x-vivace-session-id"],
            )
            opts.setdefault("expose_headers", ["x-vivace-run-id", "x-vivace-session-id"])
            middleware.append(Middleware(CORSMiddleware, **opts))
        middleware.append(Middleware(BodyLimit, max_bytes=self.max_body_bytes))
        app = Starlette(routes=routes, middleware=middleware, lifespan=self.lifespan)
        install_handlers(app)
        return app

    def _make_event_log(self) -> EventLog:
        from .sse import InMemoryEventLog, StorageEventLog

        log = self._event_log
        if log is not None and not isinstance(log, str):
            return log
        kind = log or os.environ.get(EVENT_LOG_ENV) or "memory"
        if kind == "memory":
            return InMemoryEventLog()
        if kind != "storage":
            from ..errors import UserError

            raise UserError(f"{EVENT_LOG_ENV} must be one of {EVENT_LOG_KINDS}, not {kind!r}")
        if self.storage is None or getattr(self.storage, "events", None) is None:
            from ..errors import UserError

            raise UserError('event_log="storage" needs a storage (VivaceApp(storage=...))')
        return StorageEventLog(self.storage)

    def _sessions_of_agent(self) -> Any:
        """With the storage-backed event log (several workers), ``agent_id -> its sessions
        store``, so cancel requests cross workers through storage; None otherwise."""
        from .sse import StorageEventLog

        if not isinstance(self.log, StorageEventLog):
            return None
        from ..agent.session import resolve_storage

        def sessions_of(agent_id: str) -> Any:
            agent = self.agents.get(agent_id)
            if agent is None or agent.storage is None:
                return None
            return getattr(resolve_storage(agent.storage), "sessions", None)

        return sessions_of

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document (built once)."""
        import json

        return json.loads(self._openapi_bytes())

    def _openapi_bytes(self) -> bytes:
        if self._openapi is None:
            from .. import __version__
            from .errors import dumps
            from .openapi import build_openapi

            self.asgi  # noqa: B018
            self._openapi = dumps(build_openapi(self.ops, self.title, __version__))
        return self._openapi

    async def _serve_openapi(self, request: Any) -> Any:
        from starlette.responses import Response

        return Response(self._openapi_bytes(), media_type="application/json")

    # -- helpers for routes --------------------------------------------------------------------

    def agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise HTTPError(404, "agent_not_found", f"no agent {agent_id!r}", param="agent_id")
        return agent

    def require_storage(self) -> Any:
        if self.storage is None:
            raise HTTPError(
                404, "storage_not_configured", "this server has no storage (sessions are off)"
            )
        return self.storage


def _endpoint(server: VivaceApp, op: Op, check: Any) -> Any:
    handler = op.handler
    scope = op.scope
    # reconnects may name a run of another worker: a storage-backed log looks it up first
    prefetch = op.path.endswith("/runs/{run_id}/events")

    async def endpoint(request: Any) -> Any:
        if scope is None:
            return await handler(request, None)  # type: ignore[arg-type]
        principal = check(server.auth, request, scope)
        if prefetch:
            learn = getattr(server.log, "prefetch", None)
            if learn is not None:
                await learn(request.path_params["run_id"])
        return await handler(request, principal)

    endpoint.__name__ = handler.__name__
    return endpoint


async def _docs_page(request: Any) -> Any:
    from starlette.responses import HTMLResponse

    base = request.scope.get("root_path", "")
    return HTMLResponse(
        "<!doctype html><html><head><title>Vivace API</title>"
        '<meta charset="utf-8"></head><body>'
        f'<redoc spec-url="{base}/openapi.json"></redoc>'
        '<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>'
        "</body></html>"
    )


def _storage_from_url(url: str) -> Any:
    """The process-wide storage for a URL (``sqlite:///path``, ``postgresql://...``,
    ``memory://``): the same object the agents get for the same URL."""
    from ..storage import shared_storage

    return shared_storage(url)
