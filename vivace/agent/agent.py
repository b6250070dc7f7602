"""The :class:`Agent`: a model, instructions and tools, run by the loop in :mod:`.loop`.

Construction only stores references (no validation, copying, I/O or schema work), so
building a fresh agent per request is cheap. Everything heavy happens at the first run and
is cached per function, type or model string - never on the Agent itself.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, overload

from . import capability as _capability

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from ..knowledge import KnowledgeBase
    from ..memory import Memory
    from ..messages import Message, UserInput
    from ..models.base import Model
    from ..storage import Storage
    from ..tools import BaseTool, Toolset
    from .as_tool import AgentTool
    from .capability import Capability
    from .events import RunEvent
    from .hooks import Hooks
    from .loop import Runner
    from .result import Approval, PausedRun, RunResult

    DepsT = TypeVar("DepsT", default=None, contravariant=True)
    OutputT = TypeVar("OutputT", default=str)
    ToolItem = Callable[..., Any] | BaseTool | Toolset
else:
    from typing import TypeVar

    DepsT = TypeVar("DepsT", contravariant=True)
    OutputT = TypeVar("OutputT")

__all__ = ["Agent", "RunStream", "SyncRunStream"]


class Agent(Generic[DepsT, OutputT]):
    """An agent: ``Agent(model="openai/gpt-4o", instructions="...", tools=[get_weather])``.

    Args:
        model: ``"provider/model"``, a :class:`~vivace.models.Model`, or a list for fallbacks.
        name: Name shown in events, traces and the server (also its id there).
        instructions: The system prompt, or a callable ``(ctx) -> str`` (sync or async).
        tools: Functions, :class:`~vivace.tools.Tool` objects and
            :class:`~vivace.tools.Toolset`\\ s (a :class:`~vivace.tools.Toolkit`, an MCP server,
            a knowledge base, another agent's ``as_tool()``...).
        output_type: ``None``/``str`` for text, or a type (pydantic model, dataclass, TypedDict,
            ``int``, ``list[str]``...) the output is validated against. ``Agent(output_type=T)``
            is an ``Agent[None, T]`` for type checkers, so ``run(...).output`` is a ``T``.
        output_mode: ``"native"`` (provider JSON-schema mode) or ``"tool"`` (final-result tool);
            by default native when the model supports it.
        max_steps: Most model requests in one run.
        hooks: A :class:`~vivace.agent.hooks.Hooks` or a list of them.
        deps: Dependencies handed to tools and instructions as ``ctx.deps``.
        model_settings: Defaults for every request (``temperature``, ``max_tokens``...).
        tool_retries: Failed calls allowed per tool before the run fails.
        output_retries: Retries for invalid output, unknown tools or empty answers.
        tool_concurrency: How many tool calls of one model turn run at once.
        storage: Where sessions and runs live: a :class:`~vivace.storage.Storage` or a URL
            (``"sqlite:///.vivace/vivace.db"``, ``"postgresql://..."``). Defaults to the
            memory's storage when ``memory`` is given.
        memory: A :class:`~vivace.memory.Memory` (working memory, user memories, recall): a
            capability added to every run.
        knowledge: A :class:`~vivace.knowledge.KnowledgeBase` (agentic RAG: a search tool and
            instructions on when to use it), or any capability such as ``kb.context()``.
        knowledge_mode: ``"context"`` puts the knowledge base's top chunks for each message in
            the prompt instead of giving a tool (classic RAG; the same as ``kb.context()``).
        capabilities: More :class:`~vivace.agent.capability.Capability` objects (instructions,
            tools and work around each run).
        history_runs: How many earlier runs of the session the model sees (with storage).
        description: A short description (for the server and the Studio).

    One Agent serves any number of concurrent runs; it keeps no per-run state.
    """

    __slots__ = (
        "__weakref__",
        "capabilities",
        "deps",
        "description",
        "history_runs",
        "hooks",
        "instructions",
        "knowledge",
        "max_steps",
        "memory",
        "model",
        "model_settings",
        "name",
        "output_mode",
        "output_retries",
        "output_type",
        "storage",
        "tool_concurrency",
        "tool_retries",
        "tools",
    )

    model: str | Model | Sequence[str | Model] | None
    tools: Sequence[ToolItem] | None
    storage: Storage | str | None
    memory: Memory | None
    knowledge: KnowledgeBase | Capability | None
    hooks: Hooks | Sequence[Hooks] | None
    capabilities: Sequence[Capability] | None
    deps: DepsT | None

    @overload
    def __init__(
        self,
        model: str | Model | Sequence[str | Model] | None = None,
        *,
        name: str | None = None,
        instructions: str | Callable[..., Any] | None = None,
        tools: Sequence[ToolItem] | None = None,
        output_type: type[OutputT] | None = None,
        output_mode: str | None = None,
        max_steps: int = 20,
        hooks: Hooks | Sequence[Hooks] | None = None,
        deps: DepsT | None = None,
        model_settings: dict[str, Any] | None = None,
        tool_retries: int = 2,
        output_retries: int = 2,
        tool_concurrency: int = 8,
        storage: Storage | str | None = None,
        memory: Memory | None = None,
        history_runs: int = 10,
        description: str | None = None,
        capabilities: Sequence[Capability] | None = None,
        knowledge: KnowledgeBase | Capability | None = None,
        knowledge_mode: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Agent[DepsT, Any],
        model: str | Model | Sequence[str | Model] | None = None,
        *,
        name: str | None = None,
        instructions: str | Callable[..., Any] | None = None,
        tools: Sequence[ToolItem] | None = None,
        output_type: types.UnionType | Any = None,
        output_mode: str | None = None,
        max_steps: int = 20,
        hooks: Hooks | Sequence[Hooks] | None = None,
        deps: DepsT | None = None,
        model_settings: dict[str, Any] | None = None,
        tool_retries: int = 2,
        output_retries: int = 2,
        tool_concurrency: int = 8,
        storage: Storage | str | None = None,
        memory: Memory | None = None,
        history_runs: int = 10,
        description: str | None = None,
        capabilities: Sequence[Capability] | None = None,
        knowledge: KnowledgeBase | Capability | None = None,
        knowledge_mode: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        model: str | Model | Sequence[str | Model] | None = None,
        *,
        name: str | None = None,
        instructions: str | Callable[..., Any] | None = None,
        tools: Sequence[ToolItem] | None = None,
        output_type: Any = None,
        output_mode: str | None = None,
        max_steps: int = 20,
        hooks: Hooks | Sequence[Hooks] | None = None,
        deps: Any = None,
        model_settings: dict[str, Any] | None = None,
        tool_retries: int = 2,
        output_retries: int = 2,
        tool_concurrency: int = 8,
        storage: Storage | str | None = None,
        memory: Memory | None = None,
        history_runs: int = 10,
        description: str | None = None,
        capabilities: Sequence[Capability] | None = None,
        knowledge: KnowledgeBase | Capability | None = None,
        knowledge_mode: str | None = None,
    ) -> None:
        self.model = model
        self.name = name
        self.instructions = instructions
        self.tools = tools
        self.output_type = output_type
        self.output_mode = output_mode
        self.max_steps = max_steps
        self.hooks = hooks
        self.deps = deps
        self.model_settings = model_settings
        self.tool_retries = tool_retries
        self.output_retries = output_retries
        self.tool_concurrency = tool_concurrency
        if memory is not None and storage is None:
            storage = memory.storage
        self.storage = storage
        self.memory = memory
        self.history_runs = history_runs
        self.description = description
        self.capabilities = capabilities
        self.knowledge = (
            knowledge if knowledge_mode is None else _knowledge_in_mode(knowledge, knowledge_mode)
        )

    @property
    def id(self) -> str:
        """The agent's id (its name, or ``"agent"``)."""
        return self.name or "agent"

    # -- async API ---------------------------------------------------------------------------

    async def arun(
        self,
        input: UserInput,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        deps: DepsT | None = None,
        session_state: dict[str, Any] | None = None,
        message_history: list[Message] | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        trace_id: str | None = None,
    ) -> RunResult[OutputT]:
        """Run to the end and return the :class:`~vivace.agent.result.RunResult`.

        ``session_id``/``user_id`` bind the run to a stored session (with storage);
        ``session_state`` merges into the session's state; ``message_history`` replaces the
        stored history; ``model``/``model_settings``/``max_steps`` override the agent's for
        this run; ``run_id`` names the run; ``parent_run_id``/``trace_id`` join another run's
        trace (set automatically when the run starts inside another run's tool call).
        """
        runner = self._quiet_runner(
            input,
            run_id,
            session_id,
            user_id,
            deps,
            session_state,
            message_history,
            model,
            model_settings,
            max_steps,
            parent_run_id,
            trace_id,
        )
        return await runner.run_to_end()

    def _quiet_runner(
        self,
        input: UserInput,
        run_id: str | None,
        session_id: str | None,
        user_id: str | None,
        deps: Any,
        session_state: dict[str, Any] | None,
        message_history: list[Message] | None,
        model: Any,
        model_settings: dict[str, Any] | None,
        max_steps: int | None,
        parent_run_id: str | None,
        trace_id: str | None,
    ) -> Runner:
        """The Runner of ``arun``/``run``: nobody reads its events, so it builds none (only
        their sequence numbers are counted)."""
        loop = _loop or _load_loop()  # the run loop is imported on the first run
        options = loop.RunOptions(  # positional: this is the per-run hot path
            input,
            run_id,
            session_id,
            user_id,
            deps,
            session_state,
            message_history,
            model,
            model_settings,
            max_steps,
            False,
            None,
            None,
            parent_run_id,
            trace_id,
        )
        return loop.Runner(self, options, False)

    def astream(
        self,
        input: UserInput,
        *,
        stream_model: bool = True,
        session_id: str | None = None,
        user_id: str | None = None,
        deps: DepsT | None = None,
        session_state: dict[str, Any] | None = None,
        message_history: list[Message] | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        trace_id: str | None = None,
    ) -> RunStream[OutputT]:
        """Run and stream :mod:`~vivace.agent.events` (``async for event in agent.astream(...)``).

        Options as for :meth:`arun`. The :class:`RunStream` also exposes ``result`` once the
        stream is exhausted. With ``stream_model=False`` the model answers each turn whole (one
        ``text_delta`` per turn): cheaper when nobody watches the text arrive.
        """
        loop = _loop or _load_loop()
        return RunStream(
            loop.Runner(
                self,
                loop.RunOptions(
                    input,
                    run_id,
                    session_id,
                    user_id,
                    deps,
                    session_state,
                    message_history,
                    model,
                    model_settings,
                    max_steps,
                    stream_model,
                    None,
                    None,
                    parent_run_id,
                    trace_id,
                ),
            )
        )

    async def aresume(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        *,
        user_id: str | None = None,
        deps: DepsT | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> RunResult[OutputT]:
        """Continue a paused run with a decision for each pending call.

        ``run`` is the run id (looked up in storage, or in this process without storage), the
        :class:`~vivace.agent.result.PausedRun` or its dict. A run owned by a user is resumed
        only with that ``user_id``.
        """
        runner = self._resume_runner(
            run, approvals, False, user_id, deps, model, model_settings, max_steps, emit=False
        )  # nobody reads the events: only their sequence numbers are counted
        return await runner.run_to_end()

    def aresume_stream(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        *,
        stream_model: bool = True,
        user_id: str | None = None,
        deps: DepsT | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> RunStream[OutputT]:
        """Like :meth:`aresume`, streaming events; called like :meth:`astream` (no ``await``).

        Finding the paused run and checking ``approvals`` happen at the first event, so a
        :class:`~vivace.errors.RunNotFound` or :class:`~vivace.errors.ResumeError` is raised
        by the first ``__anext__``.
        """
        return RunStream(
            self._resume_runner(
                run, approvals, stream_model, user_id, deps, model, model_settings, max_steps
            )
        )

    def _resume_runner(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        stream: bool,
        user_id: str | None,
        deps: DepsT | None,
        model: str | Model | Sequence[str | Model] | None,
        model_settings: dict[str, Any] | None,
        max_steps: int | None,
        *,
        emit: bool = True,
    ) -> Runner:
        loop = _loop or _load_loop()
        options = loop.RunOptions(
            resume=run,
            approvals=approvals,
            stream=stream,
            user_id=user_id,
            deps=deps,
            model=model,
            model_settings=model_settings,
            max_steps=max_steps,
        )
        return loop.Runner(self, options, emit)

    # -- sync API ----------------------------------------------------------------------------

    def run(
        self,
        input: UserInput,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        deps: DepsT | None = None,
        session_state: dict[str, Any] | None = None,
        message_history: list[Message] | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        trace_id: str | None = None,
    ) -> RunResult[OutputT]:
        """Synchronous :meth:`arun` (reuses one event loop per thread)."""
        runner = self._quiet_runner(
            input,
            run_id,
            session_id,
            user_id,
            deps,
            session_state,
            message_history,
            model,
            model_settings,
            max_steps,
            parent_run_id,
            trace_id,
        )
        return run_sync(runner.run_to_end())

    def stream(
        self,
        input: UserInput,
        *,
        stream_model: bool = True,
        session_id: str | None = None,
        user_id: str | None = None,
        deps: DepsT | None = None,
        session_state: dict[str, Any] | None = None,
        message_history: list[Message] | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        trace_id: str | None = None,
    ) -> SyncRunStream[OutputT]:
        """Synchronous :meth:`astream`: an iterator of events with ``result`` at the end."""
        return SyncRunStream(
            self.astream(
                input,
                stream_model=stream_model,
                session_id=session_id,
                user_id=user_id,
                deps=deps,
                session_state=session_state,
                message_history=message_history,
                model=model,
                model_settings=model_settings,
                max_steps=max_steps,
                run_id=run_id,
                parent_run_id=parent_run_id,
                trace_id=trace_id,
            )
        )

    def resume(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        *,
        user_id: str | None = None,
        deps: DepsT | None = None,
        model: str | Model | Sequence[str | Model] | None = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> RunResult[OutputT]:
        """Synchronous :meth:`aresume`."""
        return run_sync(
            self.aresume(
                run,
                approvals,
                user_id=user_id,
                deps=deps,
                model=model,
                model_settings=model_settings,
                max_steps=max_steps,
            )
        )

    @staticmethod
    def cancel(run_id: str) -> bool:
        """Cancel a running run in this process; it ends with status ``cancelled``."""
        from .registry import cancel_run

        return cancel_run(run_id)

    def as_tool(
        self,
        name: str | None = None,
        description: str | None = None,
        *,
        session: str = "own",
        stream_model: bool = True,
        requires_approval: bool = False,
        timeout: float | None = None,
        stop_after: bool = False,
        max_retries: int | None = None,
        max_depth: int | None = None,
    ) -> AgentTool:
        """This agent as a tool of another agent (arguments: ``{"task": str}``).

        Each call is a child run of the caller's run (same trace, ``parent_run_id`` set), in
        a new session (``session="own"``) or the caller's (``"same"``), stored in this
        agent's storage or else the caller's. Its events stream through the caller's stream
        as ``nested_event`` events; when it pauses for an approval the caller pauses too and
        resuming the caller resumes it. Options as for :func:`~vivace.tools.tool`;
        ``max_depth`` bounds nested delegation (default 5, a team's own limit inside a team).
        See :mod:`vivace.agent.as_tool`.
        """
        from .as_tool import AgentTool

        return AgentTool(
            self,
            name=name,
            description=description,
            session=session,
            stream_model=stream_model,
            requires_approval=requires_approval,
            timeout=timeout,
            stop_after=stop_after,
            max_retries=max_retries,
            max_depth=max_depth,
        )

    def run_capabilities(self) -> tuple[Capability, ...]:
        """The capabilities every run of this agent uses: the process-wide defaults
        (tracing), its memory, knowledge, hooks and ``capabilities``, in that order."""
        memory, knowledge, hooks, caps = self.memory, self.knowledge, self.hooks, self.capabilities
        defaults = _capability.DEFAULTS
        if memory is None and knowledge is None and not hooks and not caps:
            return defaults
        out: list[Any] = list(defaults)
        if memory is not None:
            out.append(memory)
        if knowledge is not None:
            out.append(knowledge)
        if hooks:
            if isinstance(hooks, list | tuple):
                out.extend(hooks)
            else:
                out.append(hooks)
        if caps:
            out.extend(caps)
        return tuple(out)

    def __repr__(self) -> str:
        return f"<Agent {self.id} model={self.model!r}>"


def _knowledge_in_mode(knowledge: Any, mode: str) -> Any:
    """``knowledge_mode``: ``"agentic"`` keeps the knowledge base (a search tool),
    ``"context"`` wraps it for classic RAG."""
    from ..errors import UserError

    if mode == "agentic" or knowledge is None:
        return knowledge
    if mode == "context" and callable(getattr(knowledge, "context", None)):
        return knowledge.context()
    raise UserError(f"knowledge_mode must be 'agentic' or 'context', not {mode!r}")


class RunStream(Generic[OutputT]):
    """An async iterator of run events; ``result`` is set when it ends."""

    __slots__ = ("_gen", "_runner")

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._gen = runner.events()

    def __aiter__(self) -> RunStream[OutputT]:
        return self

    def __anext__(self) -> Awaitable[RunEvent]:
        # the run's generator itself (no coroutine around it: one hop less per event); it
        # marks the reading task for cancel() each time it is resumed
        return self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the run's event stream early (the run ends where it is)."""
        await self._gen.aclose()  # type: ignore[attr-defined]

    @property
    def run_id(self) -> str | None:
        state = getattr(self._runner, "state", None)
        return state.ctx.run_id if state is not None else None

    @property
    def result(self) -> RunResult[OutputT] | None:
        """The run's result once the stream has ended (``None`` before)."""
        state = getattr(self._runner, "state", None)
        return state.result if state is not None else None

    async def get_result(self) -> RunResult[OutputT]:
        """Drain the remaining events and return the result."""
        async for _ in self:
            pass
        result = self.result
        assert result is not None
        return result


class SyncRunStream(Generic[OutputT]):
    """A blocking iterator over a :class:`RunStream`."""

    __slots__ = ("_stream",)

    def __init__(self, stream: RunStream[OutputT]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[RunEvent]:
        return self

    def __next__(self) -> RunEvent:
        try:
            return run_sync(_next_event(self._stream), allow_thread=False)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def result(self) -> RunResult[OutputT] | None:
        return self._stream.result

    def get_result(self) -> RunResult[OutputT]:
        for _ in self:
            pass
        result = self._stream.result
        assert result is not None
        return result


_local = threading.local()
_loop: types.ModuleType | None = None


def _load_loop() -> types.ModuleType:
    global _loop
    from . import loop

    _loop = loop
    return loop


def run_sync(coro: Any, allow_thread: bool = True) -> Any:
    """Run ``coro`` to completion from sync code, reusing one event loop per thread.

    Inside a running event loop (e.g. Jupyter) it runs in a helper thread instead.
    """
    import asyncio

    if asyncio._get_running_loop() is not None:  # (get_running_loop() raises when not)
        if not allow_thread:
            coro.close()
            raise RuntimeError("use the async API (astream) inside a running event loop")
        result: list[Any] = []

        def target() -> None:
            result.append(run_sync(_capture(coro)))

        t = threading.Thread(target=target)
        t.start()
        t.join()
        ok, value = result[0]
        if ok:
            return value
        raise value
    kept = getattr(_local, "kept", None)
    if kept is None or kept.loop.is_closed():
        kept = _local.kept = _ThreadLoop(asyncio.new_event_loop())
    loop = kept.loop
    task = loop.create_task(coro)
    # A run that never waits for I/O (an in-process model, plain tools) ends in the task's
    # first step: one pass of the loop (stop() before run_forever() polls once and returns)
    # instead of the two run_until_complete() makes (about 3 us less per call).
    loop.stop()
    loop.run_forever()
    if task.done():
        return task.result()
    return loop.run_until_complete(task)


class _ThreadLoop:
    """A thread's event loop for sync calls, closed as the thread ends (its thread-local
    storage is cleared): the loop's file descriptors are released then, not whenever the
    garbage collector finds the loop's own reference cycles."""

    __slots__ = ("loop",)

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def __del__(self) -> None:
        loop = self.loop
        try:
            if not loop.is_closed() and not loop.is_running():
                loop.close()
        except Exception:  # interpreter shutdown: nothing left to release
            pass


async def _next_event(stream: RunStream[Any]) -> RunEvent:
    return await stream.__anext__()


async def _capture(coro: Any) -> tuple[bool, Any]:
    try:
        return True, await coro
    except BaseException as exc:
        return False, exc
