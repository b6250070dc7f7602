"""Import ``module:attribute`` targets and turn them into an ASGI app or an agent."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["as_asgi", "factory", "load", "tune_gc"]

TARGET_ENV = "VIVACE_SERVE_TARGET"
STUDIO_ENV = "VIVACE_STUDIO"  # ``vivace dev`` / ``vivace serve --studio`` set it
GC_ENV = "VIVACE_GC"  # ``default``: leave Python's garbage collector as it is
GC_THRESHOLDS = (7000, 10, 10)


class TargetError(Exception):
    pass


def load(target: str) -> Any:
    """The object named by ``module:attribute`` (``module`` alone: its ``app``)."""
    module_name, _, attr = target.partition(":")
    attr = attr or "app"
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise TargetError(f"cannot import module {module_name!r}: {exc}") from None
        raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def as_asgi(obj: Any) -> Any:
    """A VivaceApp, an Agent, a Workflow, a list of agents and workflows or an ASGI app ->
    an ASGI app; with ``VIVACE_STUDIO=1`` (``vivace dev``, ``vivace serve --studio``) the app
    gets the Studio."""
    from ..agent import Agent
    from ..server import VivaceApp
    from ..workflows import Workflow

    app: Any
    if isinstance(obj, VivaceApp):
        app = obj
    elif isinstance(obj, Agent):
        app = VivaceApp(agents=[obj])
    elif isinstance(obj, Workflow):
        app = VivaceApp(workflows=[obj])
    elif (
        isinstance(obj, list | tuple) and obj and all(isinstance(a, Agent | Workflow) for a in obj)
    ):
        app = VivaceApp(
            agents=[a for a in obj if isinstance(a, Agent)],
            workflows=[w for w in obj if isinstance(w, Workflow)],
        )
    elif callable(obj):
        app = obj
    else:
        raise TargetError(f"{obj!r} is not an app, an Agent, a Workflow or a list of them")
    if os.environ.get(STUDIO_ENV) == "1":
        if not isinstance(app, VivaceApp):
            raise TargetError("the Studio needs a VivaceApp, an Agent, a Workflow or a list")
        if app.extension("studio") is None:
            from ..studio import Studio

            app.add_extension(Studio())
    return app


def factory() -> Any:
    """uvicorn factory used by ``vivace serve`` (reads the target from the environment)."""
    app = as_asgi(load(os.environ[TARGET_ENV]))
    tune_gc()
    return app


def tune_gc() -> bool:
    """Set up the cyclic garbage collector of a server worker (``vivace serve`` only; an app
    mounted in your own process keeps your settings). ``VIVACE_GC=default`` opts out.

    What the app imported and built so far moves to the permanent generation
    (``gc.freeze()``: full collections stop re-scanning it), and a collection starts after
    7,000 net new objects instead of 700, a full one after 700,000 instead of 70,000.
    Measured: the collector took 11-12% of a worker's CPU per run at 16 concurrent requests,
    about 2% after this (docs/benchmarks.md, "Server"); almost every object of a run is
    freed by reference counting, so memory does not grow."""
    if os.environ.get(GC_ENV, "").strip().lower() == "default":
        return False
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return True
