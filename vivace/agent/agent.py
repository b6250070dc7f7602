"""The :class:`Agent`: a model, instructions and tools, run by the loop in :mod:`.loop`.

Construction only stores references (no validation, copying, I/O or schema work), so
building a fresh agent per request is cheap. Everything heavy happens at the first run and
is cached per function, type or model string - never on the Agent itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..messages import UserInput
    from ..models.base import Model
    from .events import RunEvent
    from .hooks import Hooks
    from .loop import Runner
    from .result import Approval, PausedRun, RunResult

__all__ = ["Agent", "RunStream", "SyncRunStream"]


class Agent:
    """An agent: ``Agent(model="openai/gpt-4o", instructions="...", tools=[get_weather])``.

    Args:
        model: ``"provider/model"``, a :class:`~vivace.models.Model`, or a list for fallbacks.
        name: Name shown in events, traces and the server (also its id there).
        instructions: The system prompt, or a callable ``(ctx) -> str`` (sync or async).
        tools: Functions, :class:`~vivace.tools.Tool` objects and :class:`~vivace.tools.Toolkit`\\ s.
        output_type: ``None``/``str`` for text, or a type (pydantic model, dataclass, TypedDict,
            ``int``, ``list[str]``...) the output is validated against.
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
            (``"sqlite:///.vivace/vivace.db"``, ``"postgresql://..."``).
        memory: A :class:`~vivace.memory.Memory` (working memory, user memories, recall); its
            tools and notes are added to every run.
        history_runs: How many earlier runs of the session the model sees (with storage).
        description: A short description (for the server and the Studio).

    One Agent serves any number of concurrent runs; it keeps no per-run state.
    """

    __slots__ = (
        "__weakref__",
        "deps",
        "description",
        "history_runs",
        "hooks",
        "instructions",
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

    def __init__(
        self,
        model: str | Model | Sequence[str | Model] | None = None,
        *,
        name: str | None = None,
        instructions: str | Callable[..., Any] | None = None,
        tools: Sequence[Any] | None = None,
        output_type: Any = None,
        output_mode: str | None = None,
        max_steps: int = 20,
        hooks: Hooks | Sequence[Hooks] | None = None,
        deps: Any = None,
        model_settings: dict[str, Any] | None = None,
        tool_retries: int = 2,
        output_retries: int = 2,
        tool_concurrency: int = 8,
        storage: Any = None,
        memory: Any = None,
        history_runs: int = 10,
        description: str | None = None,
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
        self.storage = storage
        self.memory = memory
        self.history_runs = history_runs
        self.description = description

    @property
    def id(self) -> str:
        """The agent's id (its name, or ``"agent"``)."""
        return self.name or "agent"

    # -- async API ---------------------------------------------------------------------------

    async def arun(self, input: UserInput, **options: Any) -> RunResult:
        """Run to the end and return the :class:`~vivace.agent.result.RunResult`.

        Options: ``session_id``, ``user_id``, ``deps``, ``session_state``, ``message_history``,
        ``model``, ``model_settings``, ``max_steps``, ``run_id``.
        """
        runner = self._runner(input, False, options)
        async for _ in runner.events():
            pass
        result = runner.state.result
        assert result is not None
        return result

    def astream(self, input: UserInput, *, stream_model: bool = True, **options: Any) -> RunStream:
        """Run and stream :mod:`~vivace.agent.events` (``async for event in agent.astream(...)``).

        The :class:`RunStream` also exposes ``result`` once the stream is exhausted. With
        ``stream_model=False`` the model answers each turn whole (one ``text_delta`` per turn):
        cheaper when nobody watches the text arrive.
        """
        return RunStream(self._runner(input, stream_model, options))

    async def aresume(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        **options: Any,
    ) -> RunResult:
        """Continue a paused run with a decision for each pending call."""
        runner = await self._resume_runner(run, approvals, False, options)
        async for _ in runner.events():
            pass
        result = runner.state.result
        assert result is not None
        return result

    async def aresume_stream(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        **options: Any,
    ) -> RunStream:
        """Like :meth:`aresume`, streaming events."""
        return RunStream(await self._resume_runner(run, approvals, True, options))

    # -- sync API ----------------------------------------------------------------------------

    def run(self, input: UserInput, **options: Any) -> RunResult:
        """Synchronous :meth:`arun` (reuses one event loop per thread)."""
        return run_sync(self.arun(input, **options))

    def stream(self, input: UserInput, **options: Any) -> SyncRunStream:
        """Synchronous :meth:`astream`: an iterator of events with ``result`` at the end."""
        return SyncRunStream(self.astream(input, **options))

    def resume(
        self,
        run: str | PausedRun | dict[str, Any],
        approvals: dict[str, Approval],
        **options: Any,
    ) -> RunResult:
        """Synchronous :meth:`aresume`."""
        return run_sync(self.aresume(run, approvals, **options))

    @staticmethod
    def cancel(run_id: str) -> bool:
        """Cancel a running run in this process; it ends with status ``cancelled``."""
        from .registry import cancel_run

        return cancel_run(run_id)

    # -- internals -----------------------------------------------------------------------------

    def _runner(self, input: Any, stream: bool, options: dict[str, Any]) -> Runner:
        from .loop import Runner, RunOptions

        return Runner(self, RunOptions(input, stream=stream, **options))

    async def _resume_runner(
        self, run: Any, approvals: dict[str, Any], stream: bool, options: dict[str, Any]
    ) -> Runner:
        from .loop import Runner, RunOptions, check_approvals
        from .registry import find_paused, forget_paused
        from .result import PausedRun

        if isinstance(run, dict):
            paused = PausedRun.from_dict(run)
        elif isinstance(run, str):
            paused = await find_paused(self, run, options.get("user_id"))
        else:
            paused = run
        check_approvals(self, paused, approvals)
        forget_paused(paused.run_id)
        return Runner(
            self, RunOptions(paused=paused, approvals=approvals, stream=stream, **options)
        )

    def __repr__(self) -> str:
        return f"<Agent {self.id} model={self.model!r}>"


class RunStream:
    """An async iterator of run events; ``result`` is set when it ends."""

    __slots__ = ("_gen", "_runner")

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._gen = runner.events()

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        state = getattr(self._runner, "state", None)
        if state is not None and state.handle is not None:
            import asyncio

            state.handle.task = asyncio.current_task()  # the consumer may change tasks
            state.handle.busy = True
        try:
            return await self._gen.__anext__()
        finally:
            state = getattr(self._runner, "state", None)
            if state is not None and state.handle is not None:
                state.handle.busy = False

    async def aclose(self) -> None:
        """Stop the run's event stream early (the run ends where it is)."""
        await self._gen.aclose()  # type: ignore[attr-defined]

    @property
    def run_id(self) -> str | None:
        state = getattr(self._runner, "state", None)
        return state.ctx.run_id if state is not None else None

    @property
    def result(self) -> RunResult | None:
        """The run's result once the stream has ended (``None`` before)."""
        state = getattr(self._runner, "state", None)
        return state.result if state is not None else None

    async def get_result(self) -> RunResult:
        """Drain the remaining events and return the result."""
        async for _ in self:
            pass
        result = self.result
        assert result is not None
        return result


class SyncRunStream:
    """A blocking iterator over a :class:`RunStream`."""

    __slots__ = ("_stream",)

    def __init__(self, stream: RunStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[RunEvent]:
        return self

    def __next__(self) -> RunEvent:
        try:
            return run_sync(self._stream.__anext__(), allow_thread=False)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def result(self) -> RunResult | None:
        return self._stream.result

    def get_result(self) -> RunResult:
        for _ in self:
            pass
        result = self._stream.result
        assert result is not None
        return result


_local = threading.local()


def run_sync(coro: Any, allow_thread: bool = True) -> Any:
    """Run ``coro`` to completion from sync code, reusing one event loop per thread.

    Inside a running event loop (e.g. Jupyter) it runs in a helper thread instead.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
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
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


async def _capture(coro: Any) -> tuple[bool, Any]:
    try:
        return True, await coro
    except BaseException as exc:
        return False, exc
