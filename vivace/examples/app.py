"""The example app served by a bare ``vivace serve``.

Model: ``VIVACE_MODEL`` when set, else the first provider whose API key is set, else the
clearly labelled offline demo model (:mod:`vivace.examples.demo_model`).
Storage: ``VIVACE_STORAGE_URL`` (``vivace serve`` defaults it to SQLite under ``.vivace/``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from ..agent import Agent
from ..server import VivaceApp

__all__ = ["app", "assistant", "pick_model"]

# A default model for providers commonly configured by key.
DEFAULT_MODELS = (
    ("openai", "openai/gpt-4o-mini"),
    ("anthropic", "anthropic/claude-3-5-haiku-latest"),
    ("google", "google/gemini-2.0-flash"),
    ("gemini", "gemini/gemini-2.0-flash"),
    ("groq", "groq/llama-3.3-70b-versatile"),
    ("mistral", "mistral/mistral-small-latest"),
    ("deepseek", "deepseek/deepseek-chat"),
    ("xai", "xai/grok-3-mini"),
    ("openrouter", "openrouter/openai/gpt-4o-mini"),
)


def pick_model() -> tuple[Any, str]:
    """The model to use and a human description of why it was picked."""
    chosen = os.environ.get("VIVACE_MODEL")
    if chosen:
        return chosen, f"{chosen} (from VIVACE_MODEL)"
    try:
        from ..models.router import list_providers

        with_key = {row.id for row in list_providers() if row.key_set and row.key_required}
    except Exception:  # the router is optional here: fall back to the demo model
        with_key = set()
    for provider, model in DEFAULT_MODELS:
        if provider in with_key:
            return model, f"{model} (the first provider with a key set)"
    from .demo_model import DemoModel

    return DemoModel(), "offline demo model (no provider key set)"


def word_stats(text: str) -> dict[str, int]:
    """Count the words and characters of a text.

    Args:
        text: The text to measure.
    """
    return {"words": len(text.split()), "characters": len(text)}


def current_time() -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


MODEL, MODEL_NOTE = pick_model()

assistant = Agent(
    model=MODEL,
    name="assistant",
    description="A helpful assistant with two small tools.",
    instructions="You are a concise, helpful assistant. Use the tools when they help.",
    tools=[word_stats, current_time],
)

app = VivaceApp(agents=[assistant], title="Vivace example")
