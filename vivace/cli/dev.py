"""``vivace dev``: ``vivace serve`` with auto-reload, tracing into storage and the Studio."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

__all__ = ["dev"]


def dev(args: Any) -> int:
    from .serve import serve

    host = args.host
    url = f"http://{'[' + host + ']' if ':' in host else host}:{args.port}/studio"
    print(f"Vivace Studio: {url}", file=sys.stderr, flush=True)
    return serve(
        SimpleNamespace(
            target=args.target,
            host=host,
            port=args.port,
            workers=1,
            reload=not args.no_reload,
            storage=args.storage,
            event_log=None,
            log_level=args.log_level,
            log_format=args.log_format,
            studio=True,
        )
    )
