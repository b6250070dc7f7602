"""Classic RAG: the top chunks for the user's message in the run's instructions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..agent.capability import Capability

if TYPE_CHECKING:
    from ..messages import Message
    from ..tools.context import RunContext
    from .documents import SearchHit
    from .knowledge_base import KnowledgeBase

__all__ = ["KnowledgeContext"]


class KnowledgeContext(Capability):
    """Searches ``kb`` with each run's user message and puts the hits in the instructions
    (numbered, with their sources); the run's result carries them as citations. No tool is
    added, so the model cannot search again: use the knowledge base itself for agentic RAG."""

    __slots__ = ("filters", "kb", "min_score", "top_k")

    def __init__(
        self,
        kb: KnowledgeBase,
        *,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        min_score: float | None = None,
    ) -> None:
        self.kb = kb
        self.top_k = top_k
        self.filters = filters
        self.min_score = min_score

    async def instructions(self, ctx: RunContext[Any], input: Message | None) -> str | None:
        from .knowledge_base import record_citations

        if input is None or not input.text.strip():
            return None
        hits = await self.kb.asearch(
            input.text, top_k=self.top_k, filters=self.filters, min_score=self.min_score
        )
        if not hits:
            return None
        record_citations(ctx, hits, self.kb.name)
        return self.format(hits)

    def format(self, hits: list[SearchHit]) -> str:
        """The block added to the instructions."""
        lines = [
            f"## Passages from the knowledge base {self.kb.name!r}",
            "Answer from these passages when they are relevant and cite them as [n].",
        ]
        for i, h in enumerate(hits, 1):
            lines.append(f"\n[{i}] source: {h.source} (passage {h.position})\n{h.text}")
        return "\n".join(lines)

    def after_run(self, ctx: RunContext[Any], result: Any) -> None:
        from .knowledge_base import move_citations

        move_citations(ctx, result)

    def __repr__(self) -> str:
        return f"<KnowledgeContext {self.kb.name!r}>"
