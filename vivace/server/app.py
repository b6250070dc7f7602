"""The :class:`VivaceApp`: agents + storage -> one ASGI app (Starlette)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..agent import Agent
    from .extensions import Extension
    from .routing import Op
    from .sse import EventLog

__all__ = ["VivaceApp"]

DEFAULT_MAX_BODY = 20 * 1024 * 1024
EVENT_LOG_KINDS = ("memory", "storage")
EVENT_LOG_ENV = "VIVACE_EVENT_LOG"
PROTOCOLS = ("mcp", "a2a", "agui")
"""The open protocols a VivaceApp can serve, each when its SDK (extra) is installed."""
_PROTOCOL_SDKS = {"mcp": "mcp", "a2a": "a2a", "agui": "ag_ui"}
MODEL_OVERRIDE_ENV = "VIVACE_MODEL_OVERRIDE"


class VivaceApp:
    r"""Serve agents over HTTP.

    Args:
        agents: The agents, addressed by ``agent.id`` (their name).
        storage: A :class:`~vivace.storage.Storage` (or a URL string) for sessions, runs and
            memory. Agents without their own storage run on this one (the app serves copies
            of them; the agents passed in are not changed); an agent that brought its own
            storage keeps it, and it must be this same storage (a ``UserError`` otherwise: the
            server's session routes could not see its sessions). ``None``: the storage the
            agents brought, else the ``VIVACE_STORAGE_URL`` environment variable
            (``vivace serve`` sets it to SQLite under ``.vivace/``), else no storage.
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
        workflows: :class:`~vivace.workflows.Workflow`\\ s to serve under ``/workflows`` (those
            without storage run on the server's). The app recovers their crashed runs and
            fires their cron schedules while it runs.
        tools: Tools (functions, :class:`~vivace.tools.Tool`\\ s, static toolsets) served over
            MCP beside the agents (see ``protocols``).
        protocols: The open protocols to serve: ``"mcp"`` (``/mcp``: the agents, ``tools``
            and workflows as MCP tools), ``"a2a"`` (``/a2a/{agent_id}`` and its agent card),
            ``"agui"`` (``/agents/{agent_id}/agui``), all behind ``auth``. ``None``: each one
            whose SDK is installed (``vivace[mcp]``, ``vivace[a2a]``, ``vivace[agui]``);
            ``False``: none. Their SDKs are imported on the first protocol request.
        knowledge: Knowledge bases (:class:`~vivace.knowledge.KnowledgeBase`) to serve under
            ``/knowledge`` (with those the agents use).
        extensions: Route modules and lifecycles from parts above the server, e.g.
            ``[vivace.studio.Studio()]`` (:mod:`vivace.server.extensions`).
        model_override: Who may choose a run's model (``"model"`` in the run request):
            ``True`` anyone allowed to run, ``False`` nobody, ``None`` (default) admins -
            which everyone is while the server is open to localhost only (``vivace dev``).
            ``None`` also reads ``VIVACE_MODEL_OVERRIDE`` (``1``/``0``).

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
        run_lease: float | None = None,
        workflows: Sequence[Any] = (),
        tools: Sequence[Any] = (),
        protocols: bool | Sequence[str] | None = None,
        knowledge: Sequence[Any] = (),
        extensions: Sequence[Extension] = (),
        model_override: bool | None = None,
    ) -> None:
        from .inputs import DEFAULT_MEDIA_TYPES

        given: dict[str, Agent] = {}
        if isinstance(agents, Mapping):
            given = dict(agents)
        else:
            for a in agents:
                if a.id in given:
                    from ..errors import UserError

                    raise UserError(f"two agents share the id {a.id!r}: give them distinct names")
                given[a.id] = a
        if run_lease is not None:
            storage = _leased(storage, run_lease)
        self.storage = _server_storage(given, storage)
        self.agents: dict[str, Agent] = _with_storage(given, self.storage)
        self.workflows: dict[str, Any] = _workflows_with_storage(workflows, self.storage)
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
        self.tools = list(tools)
        self.protocols = _protocols(protocols)
        self.knowledge = list(knowledge)
        self.extensions: list[Extension] = list(extensions)
        if model_override is None:
            flag = os.environ.get(MODEL_OVERRIDE_ENV, "").strip().lower()
            model_override = {"1": True, "true": True, "0": False, "false": False}.get(flag)
        self.model_override = model_override
        self._unbound = False  # extensions wait for the loop that serves the app
        self._asgi: Starlette | None = None
        self.ops: list[Op] = []
        if "mcp" in self.protocols:  # clashing names etc. fail here, not at the first request
            from ..mcp.server import check_served

            check_served(self.agents, self.tools, list(self.workflows.values()))

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
        if self._unbound:
            self._bind()
        await app(scope, receive, send)

    def _bind(self) -> None:
        """Tell the extensions the loop serving this app (it owns the storage)."""
        import asyncio

        self._unbound = False
        loop = asyncio.get_running_loop()
        for ext in self.extensions:
            bind = getattr(ext, "bind", None)
            if bind is not None:
                bind(loop)

    def add_extension(self, extension: Extension) -> None:
        """Add an extension (before the app is first used)."""
        if self._asgi is not None:
            from ..errors import UserError

            raise UserError("add extensions before the app serves (or pass extensions=[...])")
        self.extensions.append(extension)

    def extension(self, name: str) -> Extension | None:
        """The extension called ``name`` (e.g. ``"studio"``), or None."""
        return next((e for e in self.extensions if getattr(e, "name", None) == name), None)

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
        if self._unbound:
            self._bind()
        self._warm()
        worker = None
        if self.workflows:  # crashed runs are recovered, cron schedules fire
            from ..workflows import Worker

            worker = Worker(list(self.workflows.values()))
            await worker.start()
        try:
            yield
        finally:
            jobs = getattr(self.asgi.state, "knowledge_jobs", None)
            if jobs is not None:  # ingests still running stop between whole documents
                await jobs.shutdown()
            if worker is not None:
                await worker.stop()
            await self.mounts.aclose()  # protocol SDKs' sessions and tasks
            await self.runs.shutdown()
            aclose = getattr(self.log, "aclose", None)
            if aclose is not None:  # write the events still buffered
                await aclose()
            for ext in reversed(self.extensions):
                aclose_ext = getattr(ext, "aclose", None)
                if aclose_ext is not None:
                    await aclose_ext()
            close = getattr(self.storage, "close", None)
            if close is not None:
                await close()

    def _warm(self) -> None:
        """At startup, what the first run would otherwise do while a client waits: import the
        run loop and each agent's model adapter (with its HTTP client library), and build each
        agent's tool plan (tool schemas, definitions and argument validators; the plans are
        shared with the fresh agents of later requests). What fails here is left for the
        first run, which reports it."""
        from ..agent import loop, session  # noqa: F401 - every run needs both
        from ..models.router import resolve_model
        from ..tools.tool import Tool

        for agent in self.agents.values():
            with contextlib.suppress(Exception):  # imports the provider's adapter and client
                resolve_model(agent.model)
            if getattr(agent, "tools", None):
                with contextlib.suppress(Exception):
                    plan = loop.tool_plan(agent)
                    for t in plan[1].values() if plan else ():
                        if isinstance(t, Tool):
                            t.schema.validator  # noqa: B018 - the arguments' model, built now

    def _build(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware

        from .auth import resolve_auth
        from .errors import install_handlers
        from .idempotency import RecentRuns
        from .ids import SlashSafePaths
        from .middleware import BodyLimit, TraceContext
        from .mounts import Mounts
        from .routes import all_routes
        from .routing import starlette_routes
        from .runs import LiveRuns
        from .state import Settings

        self.auth = resolve_auth(self._auth_arg)
        self.log: EventLog = self._make_event_log()
        self.runs = LiveRuns(self.log, sessions_of=self._sessions_of_agent())
        self.mounts = Mounts()
        extra = [op for ext in self.extensions for op in ext.routes]
        self.ops = all_routes(docs=self.docs, protocols=self.protocols, extra=extra)
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
                [
                    "authorization",
                    "content-type",
                    "idempotency-key",
                    "last-event-id",
                    "x-vivace-session-id",
                    "traceparent",
                ],
            )
            opts.setdefault(
                "expose_headers",
                [
                    "x-vivace-run-id",
                    "x-vivace-session-id",
                    "x-vivace-trace-id",
                    "idempotent-replayed",
                ],
            )
            middleware.append(Middleware(CORSMiddleware, **opts))
        middleware.insert(0, Middleware(TraceContext))
        middleware.append(Middleware(BodyLimit, max_bytes=self.max_body_bytes))
        middleware.append(Middleware(SlashSafePaths))
        app = Starlette(
            routes=starlette_routes(self.ops), middleware=middleware, lifespan=self.lifespan
        )
        state = app.state
        state.agents = self.agents
        state.workflows = self.workflows
        state.tools = self.tools
        state.mounts = self.mounts
        state.storage = self.storage
        state.event_log = self.log
        state.runs = self.runs
        state.auth = self.auth
        state.idempotency = RecentRuns()
        state.ops = self.ops
        from .routes.knowledge import knowledge_bases_of

        state.knowledge = knowledge_bases_of(self.agents.values(), self.knowledge)
        state.settings = Settings(
            max_body_bytes=self.max_body_bytes,
            allowed_media_types=self.allowed_media_types,
            title=self.title,
            docs=self.docs,
            model_override=self.model_override,
        )
        install_handlers(app)
        self._asgi = app
        for ext in self.extensions:
            setup = getattr(ext, "setup", None)
            if setup is not None:
                setup(self)
        self._unbound = any(hasattr(ext, "bind") for ext in self.extensions)
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

        from .routes.docs import openapi_bytes

        request = _AppRequest(self.asgi)
        return json.loads(openapi_bytes(request))  # type: ignore[arg-type]


class _AppRequest:
    """Just enough of a request for helpers that read ``request.app.state``."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app


def _protocols(arg: bool | Sequence[str] | None) -> tuple[str, ...]:
    """The protocols to serve (see ``VivaceApp(protocols=)``); asking for one whose SDK is
    not installed is a ``UserError``."""
    from importlib.util import find_spec

    from ..errors import UserError

    if arg is False:
        return ()
    if arg is None:
        return tuple(p for p in PROTOCOLS if find_spec(_PROTOCOL_SDKS[p]) is not None)
    names = PROTOCOLS if arg is True else tuple(dict.fromkeys(arg))
    for name in names:
        if name not in PROTOCOLS:
            raise UserError(f"unknown protocol {name!r}: choose from {', '.join(PROTOCOLS)}")
        if find_spec(_PROTOCOL_SDKS[name]) is None:
            raise UserError(f"serving {name} needs its SDK: pip install 'vivace[{name}]'")
    return names


def _leased(storage: Any, run_lease: float) -> Any:
    """The storage URL with its run lease set (``run_lease`` is a storage setting)."""
    from ..errors import UserError
    from ..storage import with_url_option

    if storage is None:
        storage = os.environ.get("VIVACE_STORAGE_URL")
    if isinstance(storage, str):
        return with_url_option(storage, "run_lease", run_lease)
    if storage is not None and getattr(storage, "run_lease", run_lease) != run_lease:
        raise UserError(
            "run_lease is a setting of the storage: give it to the storage object "
            "(e.g. SQLiteStorage(path, run_lease=30)) or pass a storage URL"
        )
    if storage is None:
        raise UserError("run_lease needs a storage (VivaceApp(storage=...))")
    return storage


def _server_storage(agents: Mapping[str, Agent], storage: Any) -> Any:
    """The server's storage: the ``storage`` argument, else the one storage the agents
    brought, else ``VIVACE_STORAGE_URL``. URLs resolve to the process-wide object
    (:func:`vivace.storage.shared_storage`), so the same URL is the same storage.

    An agent keeps the storage it brought. The server's session and memory routes read the
    server's storage, so an agent whose storage is a *different* one would have sessions the
    server cannot show (or continue across agents): that is a ``UserError`` here.
    """
    from ..errors import UserError
    from ..storage import shared_storage

    own: dict[int, tuple[Any, str]] = {}
    for agent_id, a in agents.items():
        if a.storage is not None:
            st = shared_storage(a.storage)
            own.setdefault(id(st), (st, agent_id))
    if storage is not None:
        server = shared_storage(storage)
        for st, agent_id in own.values():
            if st is not server:
                raise UserError(
                    f"agent {agent_id!r} has its own storage ({_label(st)}), not the server's "
                    f"({_label(server)}): its sessions would be invisible to the server's "
                    "session routes. Give both the same storage object or URL, or leave the "
                    "agent's storage unset (it then uses the server's)."
                )
        return server
    if len(own) > 1:
        names = ", ".join(repr(agent_id) for _, agent_id in own.values())
        raise UserError(
            f"agents {names} bring different storages: the server can serve sessions from "
            "one. Give them the same storage object or URL (or VivaceApp(storage=...))."
        )
    if own:
        return next(iter(own.values()))[0]
    url = os.environ.get("VIVACE_STORAGE_URL")
    return shared_storage(url) if url else None


def _with_storage(agents: dict[str, Agent], storage: Any) -> dict[str, Agent]:
    """The agents to serve: those without storage get a copy using the server's (the agents
    passed in are never changed)."""
    if storage is None:
        return agents
    import copy

    out: dict[str, Agent] = {}
    for agent_id, a in agents.items():
        if a.storage is None:
            a = copy.copy(a)
            a.storage = storage
        out[agent_id] = a
    return out


def _workflows_with_storage(workflows: Sequence[Any], storage: Any) -> dict[str, Any]:
    """The workflows to serve, by id: those without storage get a copy using the server's."""
    import copy

    out: dict[str, Any] = {}
    for wf in workflows:
        if wf.id in out:
            from ..errors import UserError

            raise UserError(f"two workflows share the id {wf.id!r}")
        if wf.storage is None and storage is not None:
            wf = copy.copy(wf)
            wf.storage = storage
        out[wf.id] = wf
    return out


def _label(storage: Any) -> str:
    return type(storage).__name__
