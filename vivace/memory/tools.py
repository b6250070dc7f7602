"""Memory for an agent: working memory, user memories and recall, with built-in tools.

The tools are plain async functions taking the run context first, so the agent builds their
schemas like any other tool::

    memory = Memory(storage, working=WorkingMemory(), user_memories=True)
    agent = Agent(model, tools=memory.tools())
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import trace_hook
from ..agent.capability import Capability
from ..errors import UserError
from ..storage.records import RunRecord, UserMemory
from ..tools import ModelRetry, RunContext
from .working import WorkingMemory

if TYPE_CHECKING:
    from ..agent.result import RunResult
    from ..messages import Message
    from ..storage import Storage
    from .embedder import Embedder
    from .recall import SemanticRecall
    from .summary import SessionSummary

__all__ = ["Memory"]


def _span_attrs(operation: str, ctx: RunContext[Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "vivace.span_type": "memory",
        "vivace.memory.operation": operation,
        "vivace.run_id": ctx.run_id,
    }
    if ctx.session_id:
        attrs["gen_ai.conversation.id"] = ctx.session_id
    return attrs


def _user(ctx: RunContext[Any]) -> str:
    if not ctx.user_id:
        raise UserError("user memories need a user_id for the run")
    return ctx.user_id


class Memory(Capability):
    """Memory features bound to a storage: a :class:`~vivace.agent.capability.Capability` that
    adds its tools, its notes (summary, working memory, the user's memories, recalled
    messages) to the instructions of every run, and indexes finished runs.

    ``working`` enables working memory (tool ``update_working_memory``); ``user_memories``
    enables the tools ``add_memory``, ``search_memories``, ``update_memory`` and
    ``delete_memory`` (semantic search when ``embedder`` is given, keywords otherwise);
    ``recall`` enables semantic recall over past messages; ``summary`` keeps a running summary
    of the runs that have left the history window.
    """

    __slots__ = ("_tools", "embedder", "recall", "storage", "summary", "user_memories", "working")

    def __init__(
        self,
        storage: Storage,
        *,
        working: WorkingMemory | None = None,
        user_memories: bool = False,
        recall: SemanticRecall | None = None,
        embedder: Embedder | None = None,
        summary: SessionSummary | None = None,
    ) -> None:
        self.storage = storage
        self.working = working
        self.user_memories = user_memories
        self.recall = recall
        self.embedder = embedder if embedder is not None else (recall.embedder if recall else None)
        self.summary = summary
        self._tools: list[Callable[..., Any]] | None = None

    # -- the capability -------------------------------------------------------------------------

    async def instructions(self, ctx: RunContext[Any], input: Message | None) -> str | None:
        """The notes for this run: :meth:`notes`, then the messages recalled for ``input``
        (leaving out the runs already in the history window)."""
        hook = trace_hook.HOOK
        if hook is None:
            text = await self.notes(session_id=ctx.session_id, user_id=ctx.user_id)
        else:
            with hook.span("memory load", _span_attrs("load", ctx)) as span:
                text = await self.notes(session_id=ctx.session_id, user_id=ctx.user_id)
                if span is not None:
                    span.attributes["vivace.memory.chars"] = len(text or "")
        if input is None or self.recall is None or not input.text:
            return text
        exclude = ctx.metadata.get("history_run_ids", ())
        if hook is None:
            recalled = await self.recall_messages(
                input.text, session_id=ctx.session_id, user_id=ctx.user_id, exclude_run_ids=exclude
            )
        else:
            with hook.span("memory recall", _span_attrs("recall", ctx)) as span:
                recalled = await self.recall_messages(
                    input.text,
                    session_id=ctx.session_id,
                    user_id=ctx.user_id,
                    exclude_run_ids=exclude,
                )
                if span is not None:
                    span.attributes["vivace.memory.recalled"] = len(recalled)
        if not recalled:
            return text
        block = self.recall.format(recalled)
        return f"{text}\n\n{block}" if text else block

    async def after_run(self, ctx: RunContext[Any], result: RunResult[Any]) -> None:
        """Index the finished run for recall and bring the session summary up to date."""
        if result.status != "completed" or result.session_id is None:
            return
        record = RunRecord(
            run_id=result.run_id,
            session_id=result.session_id,
            user_id=result.user_id,
            status="completed",
            messages=result.messages,
        )
        agent = ctx.agent
        history_runs = agent.history_runs if agent is not None else 0
        hook = trace_hook.HOOK
        if hook is None:
            await self.index_run(record, history_runs=history_runs)
            return
        # after the run's span has ended: name it as the parent explicitly
        with hook.span(
            "memory index",
            _span_attrs("index", ctx),
            trace_id=ctx.trace_id,
            parent_span_id=ctx.span_id,
        ):
            await self.index_run(record, history_runs=history_runs)

    # -- parts, also usable on their own ----------------------------------------------------------

    async def notes(
        self, *, session_id: str | None, user_id: str | None, max_user_memories: int = 20
    ) -> str | None:
        """Text to append to the instructions: the session summary, working memory and the
        user's memories."""
        blocks = []
        if self.summary is not None and session_id:
            text = await self.summary.load(self.storage, session_id)
            if text:
                blocks.append(self.summary.instructions_block(text))
        if self.working is not None:
            content = await self.working.load(self.storage, session_id=session_id, user_id=user_id)
            blocks.append(self.working.instructions(content))
        if self.user_memories and user_id:
            mems = await self.storage.memory.list_user_memories(user_id, limit=max_user_memories)
            if mems:
                lines = "\n".join(f"- [{m.memory_id}] {m.content}" for m in mems)
                blocks.append(f"## What you remember about the user\n{lines}")
        return "\n\n".join(blocks) if blocks else None

    async def recall_messages(
        self,
        query: str,
        *,
        session_id: str | None,
        user_id: str | None,
        exclude_run_ids: Sequence[str] = (),
    ) -> list[Message]:
        """Semantic recall for the new input (empty without ``recall``)."""
        if self.recall is None:
            return []
        return await self.recall.recall(
            self.storage,
            query,
            session_id=session_id,
            user_id=user_id,
            exclude_run_ids=exclude_run_ids,
        )

    async def index_run(self, record: RunRecord, *, history_runs: int = 0) -> None:
        """Index a finished run's messages for recall; update the session summary with the
        runs that left a history window of ``history_runs`` runs."""
        if record.status != "completed":
            return
        if self.recall is not None:
            await self.recall.index_run(self.storage, record)
        if self.summary is not None:
            await self.summary.update(self.storage, record, history_runs)

    # -- tools --------------------------------------------------------------------------------------

    def tools(self) -> list[Callable[..., Any]]:
        """The built-in tools for the enabled features (made once, so schemas are cached)."""
        if self._tools is not None:
            return self._tools
        out: list[Callable[..., Any]] = []
        self._tools = out
        if self.working is not None:
            out.append(self._working_tool())
        if self.user_memories:
            out.extend(self._user_memory_tools())
        return out

    def _working_tool(self) -> Callable[..., Any]:
        working = self.working
        storage = self.storage
        assert working is not None

        if working.schema is None:

            async def update_working_memory(ctx: RunContext[Any], content: str) -> str:
                """Replace your working memory with an updated version.

                Args:
                    content: The complete updated markdown note (keep what is still true).
                """
                await working.update(
                    storage, content, session_id=ctx.session_id, user_id=ctx.user_id
                )
                return "Working memory updated."

            return update_working_memory

        async def update_working_memory_fields(ctx: RunContext[Any], memory: Any) -> str:
            """Update your working memory: set the fields you learned something about.

            Args:
                memory: The fields to change; fields you leave out keep their value.
            """
            try:
                await working.update(
                    storage, memory, session_id=ctx.session_id, user_id=ctx.user_id
                )
            except ValueError as exc:
                raise ModelRetry(f"invalid working memory: {exc}") from None
            return "Working memory updated."

        update_working_memory_fields.__annotations__ = {
            "ctx": RunContext,
            "memory": working.schema,
            "return": str,
        }
        update_working_memory_fields.__name__ = "update_working_memory"
        update_working_memory_fields.__qualname__ = "update_working_memory"
        return update_working_memory_fields

    def _user_memory_tools(self) -> list[Callable[..., Any]]:
        storage = self.storage
        embedder = self.embedder

        async def _embed(text: str) -> list[float] | None:
            if embedder is None:
                return None
            [vec] = await embedder.embed([text])
            return vec

        async def add_memory(
            ctx: RunContext[Any], content: str, topics: list[str] | None = None
        ) -> str:
            """Remember a lasting fact about the user (a preference, a detail of their life or work).

            Args:
                content: The fact, as one short sentence.
                topics: Optional tags such as "food" or "work".
            """
            user_id = _user(ctx)
            mem = UserMemory(
                f"mem_{uuid.uuid4().hex[:16]}", user_id, content, ctx.agent_name, list(topics or ())
            )
            await storage.memory.add_user_memory(mem, embedding=await _embed(content))
            return f"Remembered as {mem.memory_id}."

        async def search_memories(
            ctx: RunContext[Any], query: str, limit: int = 5
        ) -> list[dict[str, Any]]:
            """Search what you remember about the user.

            Args:
                query: What to look for.
                limit: The maximum number of memories to return.
            """
            user_id = _user(ctx)
            found = await storage.memory.search_user_memories(
                user_id, query, limit=max(1, min(limit, 50)), embedding=await _embed(query)
            )
            return [
                {"memory_id": m.memory_id, "content": m.content, "topics": m.topics} for m in found
            ]

        async def update_memory(ctx: RunContext[Any], memory_id: str, content: str) -> str:
            """Correct a memory about the user.

            Args:
                memory_id: The id of the memory (from search_memories or your instructions).
                content: The corrected fact.
            """
            from ..errors import NotFound

            user_id = _user(ctx)
            try:
                await storage.memory.update_user_memory(
                    memory_id, user_id=user_id, content=content, embedding=await _embed(content)
                )
            except NotFound:
                raise ModelRetry(f"there is no memory {memory_id!r}; search first") from None
            return f"Updated {memory_id}."

        async def delete_memory(ctx: RunContext[Any], memory_id: str) -> str:
            """Forget a memory about the user (when it is wrong or they ask you to).

            Args:
                memory_id: The id of the memory to delete.
            """
            user_id = _user(ctx)
            if not await storage.memory.delete_user_memory(memory_id, user_id=user_id):
                raise ModelRetry(f"there is no memory {memory_id!r}; search first")
            return f"Deleted {memory_id}."

        return [add_memory, search_memories, update_memory, delete_memory]
