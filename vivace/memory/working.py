"""Working memory: a markdown note or a pydantic model the agent keeps up to date."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import UserError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..storage import Storage

__all__ = ["WorkingMemory"]

DEFAULT_TEMPLATE = """# User
- Name:
- Preferences:

# Current task
- Goal:
- Open questions:
"""


@dataclass(slots=True)
class WorkingMemory:
    """Working memory settings.

    ``template`` is the markdown the memory starts from; with ``schema`` (a pydantic model)
    the memory is that model as JSON and updates are validated and merged field by field.
    ``scope`` is ``session`` (one memory per conversation) or ``user`` (shared by all of a
    user's sessions).
    """

    template: str | None = None
    schema: type[BaseModel] | None = None
    scope: Literal["session", "user"] = "session"

    def __post_init__(self) -> None:
        if self.scope not in ("session", "user"):
            raise UserError(f"working memory scope must be 'session' or 'user', not {self.scope!r}")
        if self.template is not None and self.schema is not None:
            raise UserError("working memory takes a template or a schema, not both")

    def owner(self, session_id: str | None, user_id: str | None) -> str:
        """The id the memory is stored under for this scope."""
        owner = session_id if self.scope == "session" else user_id
        if not owner:
            raise UserError(
                f"{self.scope}-scoped working memory needs a {self.scope}_id for the run"
            )
        return owner

    def initial(self) -> str:
        if self.schema is not None:
            try:
                return self.schema().model_dump_json()
            except Exception:  # required fields: start empty
                return "{}"
        return self.template if self.template is not None else DEFAULT_TEMPLATE

    async def load(self, storage: Storage, *, session_id: str | None, user_id: str | None) -> str:
        """The stored memory, or the template / empty model."""
        stored = await storage.memory.get_working_memory(
            self.scope, self.owner(session_id, user_id)
        )
        return stored if stored is not None else self.initial()

    async def update(
        self,
        storage: Storage,
        content: str | dict[str, Any] | BaseModel,
        *,
        session_id: str | None,
        user_id: str | None,
    ) -> str:
        """Replace the markdown, or merge the given fields into the schema; returns the new text.

        Invalid data for the schema raises ``ValueError`` (a tool turns it into a retry).
        """
        owner = self.owner(session_id, user_id)
        if self.schema is None:
            if not isinstance(content, str):
                raise ValueError("working memory is markdown: send the whole note as text")
            text = content
        else:
            text = self._merge(
                await self.load(storage, session_id=session_id, user_id=user_id), content
            )
        await storage.memory.set_working_memory(self.scope, owner, text)
        return text

    def _merge(self, current: str, content: str | dict[str, Any] | BaseModel) -> str:
        assert self.schema is not None
        fields: dict[str, Any]
        if isinstance(content, str):
            fields = json.loads(content)
        elif isinstance(content, dict):
            fields = content
        else:
            fields = content.model_dump(mode="json", include=content.model_fields_set)
        base = json.loads(current) if current else {}
        base.update(fields)
        return self.schema.model_validate(base).model_dump_json()

    def instructions(self, content: str) -> str:
        """The block injected into the agent's instructions."""
        kind = "JSON" if self.schema is not None else "markdown"
        return (
            "## Working memory\n"
            f"What you know so far ({kind}); keep it current with the update_working_memory "
            "tool when you learn something worth remembering:\n"
            f"<working_memory>\n{content}\n</working_memory>"
        )
