"""Route families: agents and runs, sessions and memory, OpenAI-compatible."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import VivaceApp
    from ..routing import Op

__all__ = ["all_operations"]


def all_operations(server: VivaceApp) -> list[Op]:
    from . import agents, openai, sessions

    return [*agents.operations(server), *sessions.operations(server), *openai.operations(server)]
