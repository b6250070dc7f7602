"""``vivace serve``."""

from __future__ import annotations

import os
import sys
from typing import Any

from ._load import STUDIO_ENV, TARGET_ENV, TargetError, as_asgi, load

__all__ = ["serve"]

DEFAULT_STORAGE = "sqlite:///.vivace/vivace.db"
EVENT_LOG_ENV = "VIVACE_EVENT_LOG"
LOG_FORMAT_ENV = "VIVACE_LOG_FORMAT"


def _event_log(args: Any) -> str | None:
    """``--event-log``, else ``storage`` for several workers (a reconnect may land on any of
    them), else whatever ``VIVACE_EVENT_LOG`` says (``None``: the app's default)."""
    explicit = getattr(args, "event_log", None)
    if explicit:
        return str(explicit)
    if os.environ.get(EVENT_LOG_ENV):
        return None
    if (args.workers or 1) > 1 and not args.reload:
        return "storage"
    return None


def serve(args: Any) -> int:
    try:
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:
        print("vivace serve needs the server extra: pip install 'vivace[server]'", file=sys.stderr)
        return 1
    target = args.target or "vivace.examples.app:app"
    storage = args.storage or os.environ.get("VIVACE_STORAGE_URL") or DEFAULT_STORAGE
    if getattr(args, "run_lease", None) is not None:
        from ..storage import with_url_option

        storage = with_url_option(storage, "run_lease", args.run_lease)
    os.environ["VIVACE_STORAGE_URL"] = storage
    os.environ[TARGET_ENV] = target
    event_log = _event_log(args)
    if event_log is not None:
        os.environ[EVENT_LOG_ENV] = event_log
    if getattr(args, "studio", False):
        os.environ[STUDIO_ENV] = "1"  # the app gets the Studio (here and in the workers)
    log_format = getattr(args, "log_format", None) or os.environ.get(LOG_FORMAT_ENV) or "text"
    cwd = os.getcwd()
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH")) if p)
    try:
        app = as_asgi(load(target))  # import once here: fail fast with a clear message
    except TargetError as exc:
        print(f"vivace serve: {exc}", file=sys.stderr)
        return 2
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:///:memory:"):
        path = storage[len("sqlite:///") :].partition("?")[0]
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    _banner(app, target, args, storage)
    uvicorn.run(
        "vivace.cli._load:factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers if not args.reload else None,
        reload=args.reload,
        log_level=args.log_level,
        proxy_headers=True,
        log_config=json_log_config(args.log_level) if log_format == "json" else LOGGING_CONFIG,
    )
    return 0


def json_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging as JSON lines with the trace context (``--log-format json``): the
    server's and the access log's lines of a request carry its ``trace_id``, a run's lines
    the run's ``trace_id``, ``span_id`` and ``run_id``."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["trace"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "vivace.observability.logs.JSONFormatter"}},
        "filters": {"trace": {"()": "vivace.observability.logs.TraceContextFilter"}},
        "handlers": {"json": handler},
        "loggers": {
            name: {"handlers": ["json"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "vivace")
        },
    }


def _banner(app: Any, target: str, args: Any, storage: str) -> None:
    from ..server import VivaceApp

    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    lines = [f"Vivace serving {target} on {url}  (workers: {args.workers})"]
    if isinstance(app, VivaceApp):
        for agent_id, agent in app.agents.items():
            model = agent.model
            label = model if isinstance(model, str) else getattr(model, "id", type(model).__name__)
            lines.append(f"  agent {agent_id!r}: model {label}")
        for wf_id, wf in app.workflows.items():
            extra = f", schedule {wf.schedule!r}" if wf.schedule else ""
            lines.append(f"  workflow {wf_id!r}: engine {wf.engine}{extra}")
        if app.storage is not None:
            lines.append(f"  storage: {_redact(storage)}")
            kind = os.environ.get(EVENT_LOG_ENV) or "memory"
            lines.append(f"  event log: {kind} (SSE reconnect {_RECONNECT.get(kind, '')})")
        else:
            lines.append("  storage: none (sessions are not kept)")
        if app.extension("studio") is not None:
            lines.append(f"  studio: {url}/studio (and {url}/metrics)")
        paths = {"mcp": "MCP /mcp", "a2a": "A2A /a2a/<id>/", "agui": "AG-UI /agents/<id>/agui"}
        if app.protocols:
            lines.append("  protocols: " + ", ".join(paths[p] for p in app.protocols))
    if target.startswith("vivace.examples"):
        from ..examples.app import MODEL_NOTE

        lines.append(f"  example app model: {MODEL_NOTE}")
        if "demo" in MODEL_NOTE:
            from ..examples.demo_model import HOW_TO_CONFIGURE

            lines.append(f"  {HOW_TO_CONFIGURE}")
    auth_env = any(
        os.environ.get(k) for k in ("VIVACE_API_KEY", "VIVACE_JWT_SECRET", "VIVACE_JWT_PUBLIC_KEY")
    )
    if not auth_env and args.host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            "  warning: no VIVACE_API_KEY set; without auth only loopback clients are accepted"
        )
    if not isinstance(app, VivaceApp) or app.agents or not app.workflows:
        lines.append(
            f"  try: curl -N {url}/agents/<id>/runs -H 'content-type: application/json' "
            '-d \'{"input": "hello", "stream": true}\''
        )
    else:
        lines.append(
            f"  try: curl -N {url}/workflows/<id>/runs -H 'content-type: application/json' "
            '-d \'{"input": ..., "stream": true}\''
        )
    print("\n".join(lines), file=sys.stderr, flush=True)


_RECONNECT = {"memory": "on the run's worker only", "storage": "on any worker"}


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
