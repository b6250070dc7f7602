"""The ``vivace`` command: ``serve``, ``run`` and ``models``.

* ``vivace serve [module:app]`` - serve a :class:`~vivace.server.VivaceApp`, an Agent, a list
  of agents or any ASGI app with uvicorn (no argument: the bundled example app).
* ``vivace run module:agent "message"`` - stream one run to the terminal, tool calls shown.
* ``vivace mcp module:app`` - serve the app's agents over MCP on stdio (for MCP clients).
* ``vivace models`` - the model providers and whether their keys are set.
* ``vivace knowledge add|search|list|delete`` - knowledge bases (:mod:`.knowledge`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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
        "--event-log",
        choices=["memory", "storage"],
        default=None,
        help="where run events live for SSE reconnects (default: memory with one worker, "
        "storage with several, so a client can reconnect to any worker)",
    )
    s.add_argument("--log-level", default="info", help="uvicorn log level")

    r = sub.add_parser("run", help="stream one run of an agent to the terminal")
    r.add_argument("target", help="module:attribute of an Agent (or of a VivaceApp)")
    r.add_argument("message", help="the user message")
    r.add_argument("--agent", default=None, help="agent id when the target has several")
    r.add_argument("--session", default=None, help="session id (continues the session)")
    r.add_argument("--user", default=None, help="user id")
    r.add_argument("--yes", action="store_true", help="approve every tool call that asks")
    r.add_argument("--json", action="store_true", help="print events as JSON lines")

    m = sub.add_parser("mcp", help="serve agents over MCP on stdin/stdout (for MCP clients)")
    m.add_argument("target", help="module:attribute of a VivaceApp, an Agent or a list of agents")
    m.add_argument("--name", default="vivace", help="server name shown to clients")

    sub.add_parser("models", help="list model providers and whether their keys are set")
    from .knowledge import add_parser

    add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vivace`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .serve import serve

        return serve(args)
    if args.command == "run":
        from .run import run

        return run(args)
    if args.command == "mcp":
        from .mcp import mcp

        return mcp(args)
    if args.command == "models":
        return _models()
    if args.command == "knowledge":
        from .knowledge import knowledge

        return knowledge(args)
    _parser().print_help()
    return 0


def _models() -> int:
    try:
        from ..models.router import list_providers
    except ImportError:
        print("the model router is not available in this build (vivace.models.router)")
        return 1
    rows: list[dict[str, Any]] = [
        r.to_dict() if hasattr(r, "to_dict") else dict(vars(r)) for r in list_providers()
    ]
    if not rows:
        print("no providers registered")
        return 0
    cols = [c for c in ("id", "protocol", "key_env", "key_set", "base_url") if c in rows[0]]
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    ready = [row["id"] for row in rows if row.get("key_set")]
    print(f"\n{len(rows)} providers; key set for: {', '.join(ready) or 'none'}")
    print('use one as Agent(model="provider/model-name")')
    return 0


def _cell(v: object) -> str:
    if v is True:
        return "yes"
    if v is False:
        return "-"
    return "" if v is None else str(v)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
