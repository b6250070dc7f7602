"""Serve the Studio next to a :class:`~vivace.server.VivaceApp`.

:func:`with_studio` wraps the server's ASGI app: ``/studio`` (the page and its assets),
``/studio/api/*`` (traces, metrics, the tool playground) and ``/metrics`` (Prometheus) go to
the Studio's routes; every other path goes to the server unchanged. It also turns tracing on
with a storage exporter into the server's storage (the Traces screen reads it back) and a
live metrics exporter. The Studio's API uses the server's auth: with auth on, the page asks
for a key or token and the routes show only what those credentials may see.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server import VivaceApp

__all__ = ["STATIC", "StudioApp", "with_studio"]

STATIC = Path(__file__).with_name("static")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


class StudioApp:
    """ASGI app: the server plus the Studio's routes.

    Args:
        server: The :class:`~vivace.server.VivaceApp` to serve.
        trace: Turn on tracing into the server's storage (needs storage). ``False`` when you
            configure :mod:`vivace.observability` yourself.
    """

    def __init__(self, server: VivaceApp, *, trace: bool = True) -> None:
        self.server = server
        self.trace = trace
        self.tracer: Any = None
        self.metrics: Any = None
        self.storage_exporter: Any = None
        self._routes: Any = None
        self._bound = False
        if trace:
            self._configure_tracing()

    def _configure_tracing(self) -> None:
        from ..observability import StorageExporter, active_tracer, configure
        from ..observability.metrics import MetricsExporter

        exporters: list[Any] = []
        self.metrics = MetricsExporter()
        exporters.append(self.metrics)
        if self.server.storage is not None:
            self.storage_exporter = StorageExporter(self.server.storage)
            exporters.append(self.storage_exporter)
        previous = active_tracer()
        if previous is not None:  # keep the user's exporters too
            exporters.extend(p.exporter for p in previous.processors)
        self.tracer = configure(*exporters, delay=0.2)
        self.metrics.sources.append(self.tracer)

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._bound and scope["type"] in ("http", "lifespan"):
            self._bound = True
            if self.storage_exporter is not None:
                self.storage_exporter.bind_loop(asyncio.get_running_loop())
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/studio" or path.startswith("/studio/") or path == "/metrics":
                routes = self._routes
                if routes is None:
                    routes = self._routes = self._build()
                await routes(scope, receive, send)
                return
        await self.server(scope, receive, send)

    def _build(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        from ..server.errors import install_handlers

        r = _Routes(self)
        app = Starlette(
            routes=[
                Route("/studio", r.index, methods=["GET"]),
                Route("/studio/", r.index, methods=["GET"]),
                Route("/studio/assets/{name:path}", r.asset, methods=["GET"]),
                Route("/studio/api/info", r.info, methods=["GET"]),
                Route("/studio/api/traces", r.traces, methods=["GET"]),
                Route("/studio/api/traces/{trace_id}", r.trace, methods=["GET"]),
                Route("/studio/api/metrics", r.metrics_json, methods=["GET"]),
                Route("/studio/api/agents/{agent_id}/tools/{tool}", r.run_tool, methods=["POST"]),
                Route("/metrics", r.prometheus, methods=["GET"]),
            ]
        )
        install_handlers(app)
        return app


def with_studio(server: VivaceApp, *, trace: bool = True) -> StudioApp:
    """``server`` plus the Studio at ``/studio`` (see :class:`StudioApp`)."""
    return StudioApp(server, trace=trace)


def _float(request: Any, name: str) -> float | None:
    v = request.query_params.get(name)
    if v in (None, ""):
        return None
    try:
        return float(v)
    except ValueError:
        from ..server.errors import HTTPError

        raise HTTPError(400, "invalid_query", f"{name} must be a number") from None


class _Routes:
    def __init__(self, studio: StudioApp) -> None:
        self.studio = studio
        self.server = studio.server

    def _principal(self, request: Any, scope: str | None = "runs") -> Any:
        from ..server.auth import check

        self.server.asgi  # noqa: B018 - builds the server (and its auth) on first use
        return check(self.server.auth, request, scope)

    def _queries(self) -> Any:
        from ..observability.query import queries_for
        from ..server.errors import HTTPError

        storage = self.server.storage
        if storage is None or getattr(storage, "traces", None) is None:
            raise HTTPError(404, "no_traces", "the server has no storage for traces")
        return queries_for(storage)

    async def index(self, request: Any) -> Any:
        from starlette.responses import Response

        body = (STATIC / "index.html").read_bytes()
        return Response(body, media_type=_TYPES[".html"], headers={"cache-control": "no-cache"})

    async def asset(self, request: Any) -> Any:
        from starlette.responses import Response

        from ..server.errors import HTTPError

        name = request.path_params["name"]
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents or not path.is_file():
            raise HTTPError(404, "not_found", "no such asset")
        media = _TYPES.get(path.suffix, "application/octet-stream")
        return Response(path.read_bytes(), media_type=media, headers={"cache-control": "no-cache"})

    async def info(self, request: Any) -> Any:
        from ..server.errors import json_response

        p = self._principal(request, None)
        return json_response(
            {
                "title": self.server.title,
                "user_id": p.user_id,
                "admin": p.admin,
                "auth": p.method,
                "traces": self.server.storage is not None and self.studio.trace,
                "workflows": False,
            }
        )

    async def traces(self, request: Any) -> Any:
        from ..server.errors import json_response

        principal = self._principal(request)
        q = request.query_params
        limit = int(q.get("limit") or 50)
        rows = await self._queries().list_traces(
            agent=q.get("agent") or None,
            status=q.get("status") or None,
            since=_float(request, "since"),
            until=_float(request, "until"),
            session_id=q.get("session_id") or None,
            run_id=q.get("run_id") or None,
            limit=max(1, min(limit, 500)),
        )
        return json_response({"traces": self._visible(principal, rows)})

    def _visible(self, principal: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if principal.user_id is None or principal.admin:
            return rows
        return [r for r in rows if r.get("user_id") == principal.user_id]

    async def trace(self, request: Any) -> Any:
        from ..server.errors import HTTPError, json_response

        principal = self._principal(request)
        trace_id = request.path_params["trace_id"]
        spans = await self._queries().get_trace(trace_id)
        if not spans:
            raise HTTPError(404, "trace_not_found", f"no trace {trace_id!r}")
        if principal.user_id is not None and not principal.admin:
            users = {s["attributes"].get("vivace.user_id") for s in spans}
            if users - {principal.user_id}:
                raise HTTPError(404, "trace_not_found", f"no trace {trace_id!r}")
        return json_response({"trace_id": trace_id, "spans": spans})

    async def metrics_json(self, request: Any) -> Any:
        from ..server.errors import json_response

        self._principal(request, "admin" if self._has_users() else None)
        bucket = _float(request, "bucket") or 86400.0
        since = _float(request, "since")
        if since is None:
            since = time.time() - 30 * 86400
        rows = await self._queries().metrics(
            since=since,
            until=_float(request, "until"),
            bucket=max(60.0, bucket),
            agent=request.query_params.get("agent") or None,
        )
        return json_response({"rows": rows, "bucket": bucket, "since": since})

    def _has_users(self) -> bool:
        self.server.asgi  # noqa: B018
        from ..server.auth import OpenAuth

        return not isinstance(self.server.auth, OpenAuth)

    async def prometheus(self, request: Any) -> Any:
        from starlette.responses import Response

        self._principal(request, "admin" if self._has_users() else None)
        m = self.studio.metrics
        text = m.prometheus_text() if m is not None else ""
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def run_tool(self, request: Any) -> Any:
        """The tool playground: validate the arguments and call the tool alone."""
        from ..agent.loop import static_tools
        from ..errors import VivaceError
        from ..server.errors import HTTPError, json_response
        from ..tools.context import RunContext
        from ..tools.tool import result_to_content

        principal = self._principal(request)
        agent = self.server.agents.get(request.path_params["agent_id"])
        if agent is None:
            raise HTTPError(404, "agent_not_found", f"no agent {request.path_params['agent_id']!r}")
        name = request.path_params["tool"]
        tools = static_tools(agent)
        t = tools.get(name)
        if t is None:
            raise HTTPError(404, "tool_not_found", f"agent {agent.id!r} has no tool {name!r}")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise HTTPError(400, "invalid_json", "the body must be a JSON object") from None
        arguments = body.get("arguments", {}) if isinstance(body, dict) else None
        if not isinstance(arguments, dict):
            raise HTTPError(400, "invalid_arguments", "arguments must be a JSON object")
        import uuid

        ctx: RunContext[Any] = RunContext(
            uuid.uuid4().hex,
            user_id=principal.user_id,
            deps=agent.deps,
            agent_name=agent.name,
            agent=agent,
            tool_call_id="playground",
        )
        started = time.perf_counter()
        try:
            args = t.validate(arguments)
            raw = await t.call(args, ctx)
        except VivaceError as exc:
            return json_response(
                {"ok": False, "error": exc.message or type(exc).__name__, "code": exc.code},
                status=422,
            )
        except Exception as exc:
            return json_response(
                {"ok": False, "error": f"{type(exc).__name__}: {exc}", "code": "tool_error"},
                status=422,
            )
        ms = (time.perf_counter() - started) * 1000
        return json_response({"ok": True, "result": result_to_content(raw), "duration_ms": ms})
