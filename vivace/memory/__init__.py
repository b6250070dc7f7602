"""Agent memory: history windows (in storage), working memory, user memories, semantic recall."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .embedder import Embedder, HashEmbedder
    from .recall import SemanticRecall
    from .summary import SessionSummary
    from .tools import Memory
    from .working import WorkingMemory

__all__ = [
    "Embedder",
    "HashEmbedder",
    "Memory",
    "SemanticRecall",
    "SessionSummary",
    "WorkingMemory",
]

_LAZY = {
    "Embedder": ".embedder",
    "HashEmbedder": ".embedder",
    "Memory": ".tools",
    "SemanticRecall": ".recall",
    "SessionSummary": ".summary",
    "WorkingMemory": ".working",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'vivace.memory' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
