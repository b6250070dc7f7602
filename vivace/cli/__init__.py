"""The ``vivace`` command: ``serve``, ``run`` and ``models``.

* ``vivace serve [module:app]`` - serve a :class:`~vivace.server.VivaceApp`, an Agent, a list
  of agents or any ASGI app with uvicorn (no argument: the bundled example app).
* ``vivace run module:agent "message"`` - stream one run to the terminal, tool calls shown;
  ``vivace run module:workflow INPUT`` - a workflow run with a live view of its steps.
* ``vivace workflows module:app`` - list the workflows of a module or an app.
* ``vivace mcp module:app`` - serve the app's agents over MCP on stdio (for MCP clients).
* ``vivace models [PROVIDER] [--search TEXT] [--json] [--refresh]`` - the model providers
  and whether their keys are set, models with limits and prices, a catalog refresh.
* ``vivace knowledge add|search|list|delete`` - knowledge bases (:mod:`.knowledge`).
* ``vivace dev [module:app]`` - ``serve`` with auto-reload, tracing and the Studio at ``/studio``.
* ``vivace stats`` - runs, errors, tokens, cost and latency per agent/model/day from traces.

Every command exits quietly (status 141, like a process ended by SIGPIPE) when the reader
of its output goes away: ``vivace models | head`` prints no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

EXAMPLE_APP = "vivace.examples.app:app"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vivace", description="Vivace agent runtime")
    sub = p.add_subparsers(dest="command", metavar="command")

    s = sub.add_parser("serve", help="serve agents over HTTP (REST, SSE, OpenAI-compatible)")
    s.add_argument(
        "target",
        nargs="?",
        default=None,
        help="module:attribute of a VivaceApp, an Agent, a list of agents or an ASGI app "
        "(default: the bundled example app)",
    )
    s.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--reload", action="store_true", help="restart when code changes (dev)")
    s.add_argument(
        "--storage",
        default=None,
        help="storage URL (default: $VIVACE_STORAGE_URL or sqlite:///.vivace/vivace.db)",
    )
    s.add_argument(
        "--run-lease",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a run of a crashed worker reads 'running' before it reads 'incomplete' "
        "(the storage's run lease; default 60)",
    )
    s.add_argument(
        "--event-log",
        choices=["memory", "storage"],
        default=None,
        help="where run events live for SSE reconnects (default: memory with one worker, "
        "storage with several, so a client can reconnect to any worker)",
    )
    s.add_argument("--log-level", default="info", help="uvicorn log level")
    s.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help="json: one JSON object per log line, with trace_id, span_id and run_id "
        "(default: $VIVACE_LOG_FORMAT, else text)",
    )
    s.add_argument(
        "--studio",
        action="store_true",
        help="serve the Studio at /studio (and /metrics), tracing runs into the storage",
    )

    d = sub.add_parser("dev", help="serve with auto-reload, tracing and the Studio at /studio")
    d.add_argument("target", nargs="?", default=None, help="as for serve")
    d.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    d.add_argument("--storage", default=None, help="storage URL (traces are kept there too)")
    d.add_argument("--no-reload", action="store_true", help="do not restart on code changes")
    d.add_argument("--log-level", default="warning", help="uvicorn log level")
    d.add_argument("--log-format", choices=["text", "json"], default=None, help="as for serve")

    st = sub.add_parser("stats", help="runs, tokens, cost and latency per agent/model from traces")
    st.add_argument("--storage", default=None, help="storage URL (default as for serve)")
    st.add_argument("--since", default="7d", help="how far back: 30m, 24h, 7d... (default 7d)")
    st.add_argument("--bucket", default="day", choices=["minute", "hour", "day"], help="grouping")
    st.add_argument("--agent", default=None, help="only this agent")
    st.add_argument("--json", action="store_true", help="print the rows as JSON")

    r = sub.add_parser("run", help="stream one run of an agent or a workflow to the terminal")
    r.add_argument("target", help="module:attribute of an Agent or a Workflow (or of a VivaceApp)")
    r.add_argument("message", help="the user message (a workflow: its input, JSON or text)")
    r.add_argument("--agent", default=None, help="agent id when the target has several")
    r.add_argument("--workflow", default=None, help="workflow id when the target has several")
    r.add_argument("--run-id", default=None, help="a workflow run's id")
    r.add_argument("--session", default=None, help="session id (continues the session)")
    r.add_argument("--user", default=None, help="user id")
    r.add_argument("--yes", action="store_true", help="approve every tool call that asks")
    r.add_argument("--json", action="store_true", help="print events as JSON lines")

    w = sub.add_parser("workflows", help="list the workflows of a module or an app")
    w.add_argument("target", help="module:attribute of a VivaceApp, a Workflow or a list")
    w.add_argument("--json", action="store_true", help="print descriptions as JSON")

    m = sub.add_parser("mcp", help="serve agents over MCP on stdin/stdout (for MCP clients)")
    m.add_argument("target", help="module:attribute of a VivaceApp, an Agent or a list of agents")
    m.add_argument("--name", default="vivace", help="server name shown to clients")

    from .knowledge import add_parser as add_knowledge_parser
    from .models import add_parser

    add_knowledge_parser(sub)
    add_parser(sub)
    return p


EPIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports for a reader that went away


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vivace`` console script."""
    try:
        status = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe shows up here for buffered output
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EPIPE_STATUS


def _dispatch(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .serve import serve

        return serve(args)
    if args.command == "run":
        from .run import run

        return run(args)
    if args.command == "workflows":
        from .workflows import workflows

        return workflows(args)
    if args.command == "mcp":
        from .mcp import mcp

        return mcp(args)
    if args.command == "models":
        from .models import models

        return models(args)
    if args.command == "knowledge":
        from .knowledge import knowledge

        return knowledge(args)
    if args.command == "dev":
        from .dev import dev

        return dev(args)
    if args.command == "stats":
        from .stats import stats

        return stats(args)
    _parser().print_help()
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (embedded, tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
