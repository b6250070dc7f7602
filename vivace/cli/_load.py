"""Import ``module:attribute`` targets and turn them into an ASGI app or an agent."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["as_asgi", "factory", "load"]

TARGET_ENV = "VIVACE_SERVE_TARGET"


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
    """A VivaceApp, an Agent, a list of agents or an ASGI app -> an ASGI app."""
    from ..agent import Agent
    from ..server import VivaceApp

    if isinstance(obj, VivaceApp):
        return obj
    if isinstance(obj, Agent):
        return VivaceApp(agents=[obj])
    if isinstance(obj, list | tuple) and obj and all(isinstance(a, Agent) for a in obj):
        return VivaceApp(agents=list(obj))
    if callable(obj):
        return obj
    raise TargetError(f"{obj!r} is not an app, an Agent or a list of agents")


STUDIO_ENV = "VIVACE_STUDIO"  # read by VivaceApp: ``vivace dev`` / ``serve --studio`` set it


def factory() -> Any:
    """uvicorn factory used by ``vivace serve`` (reads the target from the environment)."""
    return as_asgi(load(os.environ[TARGET_ENV]))
