"""Session summaries: a running summary of the runs that have left the history window.

The history window keeps the model's context bounded (the last ``history_runs`` runs); a
long session would otherwise forget its beginning. With a :class:`SessionSummary`, once
``every_runs`` more runs have left the window, a model condenses them - together with the
previous summary - into a new summary, which is shown in the instructions of later runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from ..messages import Message
    from ..storage import RunRecord, Storage

__all__ = ["SessionSummary"]

SCOPE: Final[Literal["summary"]] = "summary"

DEFAULT_INSTRUCTIONS = (
    "You keep a running summary of a conversation between a user and an assistant. "
    "Merge the previous summary with the new messages into one updated summary: the facts, "
    "decisions, open questions and preferences that matter later. Answer with the summary only."
)


@dataclass(slots=True)
class SessionSummary:
    """Summaries of what left the history window.

    ``model`` is a model spec (``"openai/gpt-4o-mini"``) or a Model; ``every_runs`` is how
    many runs must have left the window before the summary is brought up to date (the model
    is called once per ``every_runs`` runs, after the run that crossed the threshold is
    stored); ``max_words`` bounds the summary.
    """

    model: Any
    every_runs: int = 5
    max_words: int = 250
    instructions: str = DEFAULT_INSTRUCTIONS

    async def load(self, storage: Storage, session_id: str) -> str | None:
        """The session's current summary text, if any."""
        stored = await storage.memory.get_working_memory(SCOPE, session_id)
        return json.loads(stored)["text"] if stored else None

    async def update(self, storage: Storage, record: RunRecord, history_runs: int) -> bool:
        """Bring the summary up to date after ``record`` finished; True when it changed."""
        from ..messages import Message
        from ..models.base import ModelRequest
        from ..models.router import resolve_model

        runs = await storage.sessions.list_runs(record.session_id, statuses=("completed",))
        left = runs[:-history_runs] if history_runs > 0 else runs
        stored_raw = await storage.memory.get_working_memory(SCOPE, record.session_id)
        stored: dict[str, Any] = json.loads(stored_raw) if stored_raw else {"text": "", "runs": 0}
        new = left[int(stored["runs"]) :]
        if len(new) < self.every_runs:
            return False
        transcript = "\n".join(_line(m) for r in new for m in r.messages if _line(m))
        prompt = (
            f"Previous summary:\n{stored['text'] or '(none)'}\n\nNew messages:\n{transcript}\n\n"
            f"Write the updated summary in at most {self.max_words} words."
        )
        response = await resolve_model(self.model).request(
            ModelRequest([Message.user(prompt)], instructions=self.instructions)
        )
        text = response.text.strip()
        if not text:
            return False
        await storage.memory.set_working_memory(
            SCOPE,
            record.session_id,
            json.dumps({"text": text, "runs": len(left)}),
        )
        return True

    @staticmethod
    def instructions_block(text: str) -> str:
        return f"## Summary of the earlier conversation\n{text}"


def _line(message: Message) -> str:
    text = message.text
    if message.role in ("user", "assistant") and text:
        return f"{message.role}: {text}"
    return ""
