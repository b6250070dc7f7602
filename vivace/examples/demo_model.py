"""The offline demo model: no key, no network, and it still calls a tool.

It answers every message by first calling the ``word_stats`` tool on the user's text, then
replying with the result and a note on how to plug in a real provider. It lets the whole
path (server, SSE, tool calls, storage, sessions) run on a fresh machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..testing.models import FunctionModel

if TYPE_CHECKING:
    from ..messages import Message
    from ..models.base import ModelRequest

__all__ = ["HOW_TO_CONFIGURE", "DemoModel"]

HOW_TO_CONFIGURE = (
    "This is Vivace's offline demo model. To talk to a real model, set a provider key "
    "(e.g. OPENAI_API_KEY or ANTHROPIC_API_KEY) or VIVACE_MODEL=provider/model "
    "(see `vivace models`), then restart `vivace serve`."
)


class DemoModel(FunctionModel):
    """A clearly labelled offline model that calls ``word_stats`` and then answers."""

    def __init__(self) -> None:
        super().__init__(_demo, native_output=False, model_name="offline-demo")


def _demo(messages: list[Message], request: ModelRequest) -> Any:
    from ..messages import ToolCallPart

    last = messages[-1] if messages else None
    if last is not None and last.role == "tool":
        result = last.parts[0]
        stats = getattr(result, "content", None)
        user_text = next((m.text for m in reversed(messages) if m.role == "user" and m.text), "")
        return (
            f"[offline demo model] You said: {user_text!r}. "
            f"The word_stats tool counted: {stats}. {HOW_TO_CONFIGURE}"
        )
    text = next((m.text for m in reversed(messages) if m.role == "user" and m.text), "")
    if any(d.name == "word_stats" for d in request.tools):
        import json
        import uuid

        return ToolCallPart(
            f"call_{uuid.uuid4().hex[:12]}", "word_stats", json.dumps({"text": text})
        )
    return f"[offline demo model] You said: {text!r}. {HOW_TO_CONFIGURE}"
