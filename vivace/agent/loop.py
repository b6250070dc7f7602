"""The run loop: model request -> tool calls -> results -> model, until an answer.

:meth:`Runner.events` is an async generator of :mod:`~vivace.agent.events`;
``Agent.astream`` hands it to the caller, ``Agent.arun`` drives it with ``emit=False`` (the
events are counted, for their sequence numbers, but not built: nobody would read them). All per-run state lives in the
:class:`Runner` and its :class:`RunState`, never on the Agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import operator
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    GuardrailTripped,
    MaxStepsExceeded,
    ModelRefusal,
    OutputValidationError,
    ResumeError,
    RunCancelled,
    ToolDefinitionError,
    ToolRetriesExceeded,
    UnexpectedError,
    UnexpectedModelBehavior,
    VivaceError,
)
from ..identifiers import new_id
from ..messages import (
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    input_to_message,
)
from ..models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    OutputSpec,
    ToolDefinition,
    Usage,
)
from ..models.base import ReasoningDelta as ModelReasoningDelta
from ..models.base import TextDelta as ModelTextDelta
from ..models.router import resolve_model
from ..storage.state import SessionState
from ..tools.context import _CURRENT, RunContext
from ..tools.tool import (
    BaseTool,
    ModelRetry,
    ToolArgumentsError,
    ToolResume,
    ToolSuspended,
    ToolTimeout,
    as_tool,
    result_to_content,
)
from ..tools.toolset import Toolset
from . import events as ev
from .capability import call_hooks, overridden
from .output import FINAL_RESULT_TOOL, OutputSchema, output_schema
from .registry import RunHandle, forget_paused, register_run, remember_paused, unregister_run
from .result import Approve, PausedRun, Reject, RunResult
from .session import SessionBinding, claim_paused, find_paused, resolve_storage

if TYPE_CHECKING:
    from .agent import Agent
    from .capability import Capability

__all__ = ["RunOptions", "RunState", "Runner"]

_TERMINAL = (ev.RunCompleted, ev.RunFailed, ev.RunPaused, ev.RunCancelled)
_AGAIN, _TOOLS, _ANSWER = 0, 1, 2  # what a model answer leads to (Runner._take_answer)
_HEX32 = re.compile("[0-9a-f]{32}")


class RunOptions:
    """Per-run arguments, gathered so the generator has one parameter."""

    __slots__ = (
        "approvals",
        "deps",
        "input",
        "max_steps",
        "message_history",
        "model",
        "model_settings",
        "parent_run_id",
        "resume",
        "run_id",
        "session_id",
        "session_state",
        "stream",
        "trace_id",
        "user_id",
    )

    def __init__(
        self,
        input: Any = None,
        run_id: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        deps: Any = None,
        session_state: dict[str, Any] | None = None,
        message_history: list[Message] | None = None,
        model: Any = None,
        model_settings: dict[str, Any] | None = None,
        max_steps: int | None = None,
        stream: bool = False,
        resume: Any = None,
        approvals: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.input = input
        self.run_id = run_id
        self.session_id = session_id
        self.user_id = user_id
        self.deps = deps
        self.session_state = session_state
        self.message_history = message_history
        self.model = model
        self.model_settings = model_settings
        self.max_steps = max_steps
        self.stream = stream
        self.resume = resume
        self.approvals = approvals
        self.parent_run_id = parent_run_id
        self.trace_id = trace_id


class RunState(RunHandle):
    """Mutable state of one run (the loop's working memory), and its handle in the registry
    of live runs (made in the task that runs it)."""

    __slots__ = (
        "answer",
        "ctx",
        "messages",
        "new_from",
        "result",
        "retries",
        "seq",
        "step",
        "tool_failures",
        "usage",
    )

    def __init__(self, ctx: RunContext[Any], messages: list[Message], new_from: int) -> None:
        self.ctx = ctx
        self.messages = messages
        self.new_from = new_from
        self.usage = Usage()
        self.seq = 0
        self.step = 0
        self.retries = 0
        self.tool_failures: dict[str, int] = {}
        self.result: RunResult[Any] | None = None
        self.answer: Any = None  # the final answer, once the model gave it
        RunHandle.__init__(self)  # cancel() flags the run and interrupts its task

    def next_seq(self) -> int:
        s = self.seq
        self.seq = s + 1
        return s


class _Finish(Exception):
    """Internal: end the run with this status."""

    def __init__(
        self,
        status: str,
        output: Any = None,
        error: VivaceError | None = None,
        paused: PausedRun | None = None,
    ) -> None:
        self.status = status
        self.output = output
        self.error = error
        self.paused = paused


class _Setup:
    """What the run needs from the agent, resolved once at the start of the run."""

    __slots__ = (
        "caps",
        "defs",
        "dynamic",
        "max_steps",
        "model",
        "notes",
        "output",
        "output_mode",
        "output_spec",
        "settings",
        "tools",
    )

    tools: dict[str, BaseTool]
    notes: list[str]  # the toolsets' instructions
    dynamic: list[Toolset]  # toolsets that list their tools per run (setup.tools: the run's own)
    defs: list[ToolDefinition]
    output: OutputSchema | None
    output_mode: str | None
    output_spec: OutputSpec | None  # set for native structured output
    model: Model
    settings: dict[str, Any] | None
    max_steps: int

    def __init__(self) -> None:
        # the rest is set by Runner._resolve(), the run's first step
        self.caps: tuple[Capability, ...] = ()


def _add_tool(tools: dict[str, BaseTool], t: BaseTool) -> None:
    known = tools.get(t.name)
    if known is not None and known is not t:
        raise ToolDefinitionError(
            f"two different tools are named {t.name!r} in this run: rename one "
            "(Toolset.prefixed() keeps two toolsets' names apart)",
            tool=t.name,
        )
    tools[t.name] = t


def collect_tools(
    items: Any, tools: dict[str, BaseTool], notes: list[str], dynamic: list[Toolset]
) -> None:
    """Add functions, tools and static toolsets to ``tools`` (and their instructions to
    ``notes``); toolsets listed per run go to ``dynamic``."""
    for item in items or ():
        if isinstance(item, Toolset):
            static = item.static_tools()
            if static is None:
                dynamic.append(item)
            else:
                for t in static:
                    _add_tool(tools, t)
            if item.instructions:
                notes.append(item.instructions)
        else:
            t = as_tool(item)
            if t.name in tools:
                _add_tool(tools, t)  # the same tool twice is fine; two of one name are not
            else:
                tools[t.name] = t


def static_tools(agent: Agent[Any, Any]) -> dict[str, BaseTool]:
    """The tools an agent has for every run (its own and its capabilities'), without the
    ones toolsets list per run."""
    tools: dict[str, BaseTool] = {}
    collect_tools(agent.tools, tools, [], [])
    for cap in agent.run_capabilities():
        if "tools" in overridden(cap):
            collect_tools(cap.tools(), tools, [], [])
    return tools


_PLANS: dict[
    tuple[Any, ...], tuple[tuple[Any, ...], dict[str, BaseTool], list[ToolDefinition]]
] = {}
_PLANS_MAX = 1024


def tool_plan(
    agent: Agent[Any, Any],
) -> tuple[tuple[Any, ...], dict[str, BaseTool], list[ToolDefinition]] | None:
    """``(items, tools by name, their definitions)`` for ``agent.tools``, collected once per
    list of items and shared by every agent that lists the very same items (the server's
    fresh agent per request too): read-only, a run copies what it changes. None when the
    items include a toolset (whose tools are collected per run: they may change) or cannot
    be hashed."""
    items = agent.tools
    key = tuple(items) if items else ()
    try:
        plan = _PLANS.get(key)
    except TypeError:  # an item that cannot be a dict key
        return None
    if plan is not None and all(map(operator.is_, plan[0], key)):
        return plan
    if any(isinstance(item, Toolset) for item in key):
        return None
    tools: dict[str, BaseTool] = {}
    collect_tools(key, tools, [], [])
    plan = (key, tools, [t.definition() for t in tools.values()])
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


async def _instructions(
    agent: Agent[Any, Any],
    ctx: RunContext[Any],
    notes: Sequence[str],
    user_msg: Message | None,
    caps: tuple[Capability, ...],
) -> str | None:
    ins = agent.instructions
    if callable(ins):
        ins = ins(ctx)
        if inspect.isawaitable(ins):
            ins = await ins
    for cap in caps:
        if "instructions" in overridden(cap):
            text = cap.instructions(ctx, user_msg)
            if inspect.isawaitable(text):
                text = await text
            if text:
                notes = [*notes, text]
    if notes:
        ins = "\n\n".join([ins, *notes] if ins else notes)
    return ins


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, VivaceError):
        return exc.message or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _trace_context(run_id: str, opts: RunOptions) -> tuple[str, str, str | None]:
    """``(trace_id, span_id, parent_run_id)`` for a new run: the caller's, else the trace of
    the tool call this run was started in, else a new trace."""
    parent = _CURRENT.get()
    if parent is None and opts.run_id is None and opts.trace_id is None:
        return run_id, run_id[16:], opts.parent_run_id  # a new random run id: its own trace
    parent_run_id = opts.parent_run_id
    trace_id = opts.trace_id
    if parent is not None:
        if parent_run_id is None:
            parent_run_id = parent.run_id
        if trace_id is None:
            trace_id = parent.trace_id
    if opts.run_id is None or _HEX32.fullmatch(run_id):  # a uuid4 hex: random enough for both
        return trace_id or run_id, run_id[16:], parent_run_id
    return trace_id or uuid.uuid4().hex, os.urandom(8).hex(), parent_run_id


class Runner:
    """Drives one run. ``events()`` yields the event stream (with ``emit=False`` only the
    terminal event: the others are numbered but not built); ``state.result`` holds the result."""

    __slots__ = ("agent", "emit", "opts", "setup", "state")

    def __init__(self, agent: Agent[Any, Any], opts: RunOptions, emit: bool = True) -> None:
        self.agent = agent
        self.opts = opts
        self.emit = emit
        self.setup = _Setup()
        self.state: RunState

    # -- public --------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ev.RunEvent]:
        agent, opts = self.agent, self.opts
        paused = await self._paused() if opts.resume is not None else None
        if paused is not None:
            run_id = paused.run_id
            session_id, user_id = paused.session_id, paused.user_id
            trace_id, span_id, parent_run_id = paused.trace_id, paused.span_id, paused.parent_run_id
            if trace_id is None or span_id is None:
                trace_id, span_id, _ = _trace_context(run_id, opts)
        else:
            run_id = opts.run_id or new_id()
            session_id, user_id = opts.session_id, opts.user_id
            trace_id, span_id, parent_run_id = _trace_context(run_id, opts)
        user_msg: Message | None = None
        binding: SessionBinding | None = None
        history: list[Message]
        if paused is None:
            user_msg = input_to_message(opts.input)
            history = list(opts.message_history or ())
        else:
            history = paused.messages
        session_state: SessionState | None = None
        if agent.storage is not None:
            storage = resolve_storage(agent.storage)
            # typed storage errors (ownership, database) surface here, before the run starts
            if paused is None:
                binding = await SessionBinding.begin(
                    agent,
                    storage,
                    run_id,
                    session_id,
                    user_id,
                    user_msg.to_dict(),  # type: ignore[union-attr]
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_run_id=parent_run_id,
                )
                if opts.message_history is None:
                    history = binding.context.history
                if opts.session_state:
                    binding.context.state.update(opts.session_state)
                session_state = binding.context.state
                session_id = binding.record.session_id
            else:
                claimed = await claim_paused(agent, paused)
                if claimed is not None:
                    binding = claimed[0]
                    session_state = binding.context.state
                    paused = claimed[1]
        if session_state is None:  # no storage: still a SessionState (increment/append/merge)
            given = opts.session_state if paused is None else paused.session_state
            session_state = SessionState.loaded(dict(given or ()), {})
        ctx = self._context(
            run_id, session_id, user_id, session_state, (trace_id, span_id, parent_run_id)
        )
        if paused is not None:
            state = self.state = RunState(ctx, list(history), paused.new_from)
            state.usage = Usage.from_dict(paused.usage.to_dict())
            state.step = paused.step
            state.tool_failures = dict(paused.tool_failures)
            state.retries = paused.retries
            state.seq = paused.seq
        else:
            history = list(history)
            state = self.state = RunState(ctx, history, len(history))
        ctx.messages = state.messages
        ctx.usage = state.usage
        if binding is not None and binding.context.history_run_ids:
            ctx.metadata["history_run_ids"] = binding.context.history_run_ids
        register_run(run_id, state)
        if binding is not None:
            await binding.keep_alive()
        trace = (trace_id, span_id, parent_run_id)
        caps = agent.run_capabilities()
        if caps:
            self.setup.caps = caps
        finish = bool(caps) or binding is not None
        try:
            async for event in self._body(paused, user_msg):
                if finish and type(event) in _TERMINAL:
                    event = await self._finish(binding, event)
                event.trace = trace
                # the reader has the event: a cancel() from now on only flags the run, until
                # a reader - in whichever task - asks for the next one
                state.busy = False
                yield event
                state.waiting()
        except asyncio.CancelledError:
            if state.cancel_requested:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                event = self._end("cancelled", error=RunCancelled("cancelled by request"))
                if finish:
                    event = await self._finish(binding, event)
                event.trace = trace
                yield event
            else:
                result = self._conclude(
                    "cancelled", error=RunCancelled("the task running the run was cancelled")
                )
                if binding is not None:
                    with contextlib.suppress(Exception):
                        await binding.finish(result)
                raise
        finally:
            unregister_run(run_id, state)

    async def run_to_end(self) -> RunResult[Any]:
        """Drive the run to its end (its events unread) and return its result.

        A run without storage, capabilities or a paused run to resume - nothing that reads
        its events - takes the plain path: the steps of :meth:`events` as one coroutine, the
        events counted (for a paused run's sequence) but never built."""
        agent, opts, setup = self.agent, self.opts, self.setup
        if (
            self.emit
            or opts.resume is not None
            or opts.stream
            or agent.storage is not None
            or agent.run_capabilities()
        ):
            async for _ in self.events():
                pass
            result = self.state.result
            assert result is not None
            return result
        run_id = opts.run_id or new_id()
        user_msg = input_to_message(opts.input)
        given = opts.session_state
        history = list(opts.message_history) if opts.message_history else []
        ctx = self._context(
            run_id,
            opts.session_id,
            opts.user_id,
            SessionState.loaded(dict(given) if given else {}, {}),
            _trace_context(run_id, opts),
        )
        state = self.state = RunState(ctx, history, len(history))
        ctx.messages = history
        ctx.usage = state.usage
        register_run(run_id, state)
        try:
            try:
                self._resolve()
                if setup.dynamic:
                    for toolset in setup.dynamic:
                        for t in await toolset.tools_for_run(ctx):
                            _add_tool(setup.tools, t)
                    self._resolve_output()
                history.append(user_msg)
                state.seq = 1  # RunStarted
                instructions = agent.instructions
                if setup.notes or callable(instructions):
                    instructions = await _instructions(agent, ctx, setup.notes, user_msg, ())
                model = setup.model
                while True:
                    request = self._next_request(instructions)
                    response = await model.request(request)
                    usage = response.usage
                    usage.requests = 1
                    usage.tool_calls = 0
                    state.usage += usage
                    parts = response.parts
                    text, reasoning, calls = _read_parts(parts)
                    # ModelRequestStarted, ModelRequestCompleted, ReasoningDelta, TextDelta
                    state.seq += 2 + (reasoning != "") + (text != "")
                    taken = self._take_answer(response, parts, text, calls)
                    if taken != _TOOLS:
                        if taken == _ANSWER:
                            self._conclude("completed", state.answer)
                            break
                        continue  # the answer was empty or invalid: the model was asked again
                    if setup.output_mode == "tool":
                        final = next((c for c in calls if c.name == FINAL_RESULT_TOOL), None)
                        if final is not None:
                            for _ in self._final_result(final, calls):
                                pass
                            continue
                    runnable, pending, emits = self._sort_calls(calls)
                    state.seq += len(runnable)  # ToolCallStarted
                    if emits:
                        results: list[tuple[ToolResultPart, Any]] = []
                        async for _ in self._execute_emitting(runnable, results, None):
                            pass
                    elif len(runnable) == 1:
                        results = [await self._execute_one(runnable[0], None)]
                    else:
                        results = await self._execute(runnable)
                    suspended: dict[str, tuple[ToolCallPart, ToolSuspended]] | None = None
                    if len(results) == 1 and type(results[0][1]) is not ToolSuspended:
                        state.seq += 1  # ToolCallCompleted
                        result_parts = [results[0][0]]
                    else:
                        for call, (_, raw) in zip(runnable, results, strict=True):
                            if type(raw) is ToolSuspended:
                                if suspended is None:
                                    suspended = {}
                                suspended[call.id] = (call, raw)
                            else:
                                state.seq += 1  # ToolCallCompleted
                        result_parts = [r for r, raw in results if type(raw) is not ToolSuspended]
                    if pending or suspended:
                        state.seq += len(pending)
                        paused_state = self._paused_state(pending, result_parts, suspended)
                        raise _Finish("paused", paused=paused_state)
                    self._after_results(calls, result_parts, results)
            except _Finish as fin:
                self._conclude(fin.status, fin.output, fin.error, fin.paused)
            except GuardrailTripped as exc:
                self._conclude("blocked", error=exc)
            except VivaceError as exc:
                self._conclude("failed", error=exc)
            except Exception as exc:
                self._conclude("failed", error=UnexpectedError.wrap(exc))
        except asyncio.CancelledError:
            if not state.cancel_requested:
                self._conclude(
                    "cancelled", error=RunCancelled("the task running the run was cancelled")
                )
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self._conclude("cancelled", error=RunCancelled("cancelled by request"))
        finally:
            unregister_run(run_id, state)
        result = state.result
        assert result is not None
        return result

    def _context(
        self,
        run_id: str,
        session_id: str | None,
        user_id: str | None,
        session_state: SessionState,
        trace: tuple[str, str, str | None],
    ) -> RunContext[Any]:
        """The run's context (its messages and usage are set once the run's state exists)."""
        agent, deps = self.agent, self.opts.deps
        return RunContext(
            run_id,
            session_id,
            user_id,
            session_state,
            deps if deps is not None else agent.deps,
            agent.name,
            [],
            0,
            None,
            0,
            {},
            trace[0],
            trace[1],
            trace[2],
            agent,
        )

    async def _paused(self) -> PausedRun:
        """The paused run to resume, its approvals checked (nothing is claimed yet)."""
        run, agent, opts = self.opts.resume, self.agent, self.opts
        if isinstance(run, dict):
            paused = PausedRun.from_dict(run)
        elif isinstance(run, str):
            paused = await find_paused(agent, run, opts.user_id)
        else:
            paused = run
        check_approvals(agent, paused, opts.approvals or {})
        forget_paused(paused.run_id)
        return paused

    async def _finish(self, binding: SessionBinding | None, event: ev.RunEvent) -> ev.RunEvent:
        """Everything a run does after its outcome is known, before its terminal event goes
        out: persist the run, then the capabilities' ``after_run``. A state the storage refuses,
        or an ``after_run`` that raises, turns the outcome into a failure (and the event)."""
        result = self.state.result
        assert result is not None
        if binding is not None:
            await binding.finish(result)
        caps = self.setup.caps
        if caps:
            try:
                await call_hooks(caps, "after_run", self.state.ctx, result)
            except Exception as exc:
                error = exc if isinstance(exc, VivaceError) else UnexpectedError.wrap(exc)
                result.status = "blocked" if isinstance(exc, GuardrailTripped) else "failed"
                result.error = error
                result.paused = None
                if binding is not None:
                    await binding.fail(result)
        if result.status in ("failed", "blocked") and type(event) is not ev.RunFailed:
            assert result.error is not None
            event = ev.RunFailed(event.run_id, event.seq, result.status, result.error.to_dict())
        return event

    # -- body ----------------------------------------------------------------------------------

    async def _body(
        self, paused: PausedRun | None, user_msg: Message | None
    ) -> AsyncIterator[ev.RunEvent]:
        agent, state, setup = self.agent, self.state, self.setup
        ctx = state.ctx
        try:
            self._resolve()
            caps = setup.caps
            if paused is None and caps:
                assert user_msg is not None
                replaced = await call_hooks(caps, "before_run", ctx, user_msg)
                if replaced is not None:
                    user_msg = replaced
            if setup.dynamic:  # after before_run: a toolset's listing is part of the run (trace)
                for toolset in setup.dynamic:  # toolsets that list their tools per run
                    for t in await toolset.tools_for_run(ctx):
                        _add_tool(setup.tools, t)
                self._resolve_output()
            if paused is None:
                assert user_msg is not None
                state.messages.append(user_msg)
                seq = state.next_seq()
                if self.emit:
                    yield ev.RunStarted(
                        ctx.run_id,
                        seq,
                        agent.name,
                        ctx.session_id,
                        ctx.user_id,
                        user_msg.to_dict(),
                    )
            else:
                decisions = {
                    call_id: "rejected" if d is False or isinstance(d, Reject) else "approved"
                    for call_id, d in (self.opts.approvals or {}).items()
                }
                seq = state.next_seq()
                if self.emit:
                    yield ev.RunResumed(ctx.run_id, seq, decisions)
                async for e in self._resume(paused):
                    yield e
            instructions = agent.instructions
            if caps or setup.notes or callable(instructions):
                instructions = await _instructions(agent, ctx, setup.notes, user_msg, caps)
            # The steps, in this one generator (a nested generator per step would cost every
            # run its creation and every event a hop): ask the model, then run the tools it
            # called, until a step ends the run (``_Finish``) or fails.
            run_id, emit, stream, model = ctx.run_id, self.emit, self.opts.stream, setup.model
            while True:
                request = self._next_request(instructions)
                if caps:
                    replaced = await call_hooks(caps, "before_model_request", ctx, request)
                    if replaced is not None:
                        request = replaced
                seq = state.next_seq()
                if emit:
                    yield ev.ModelRequestStarted(run_id, seq, state.step, model.id)
                response: ModelResponse | None = None
                if stream:
                    async for chunk in model.stream(request):
                        if type(chunk) is ModelTextDelta:
                            seq = state.next_seq()
                            if emit:
                                yield ev.TextDelta(run_id, seq, chunk.text)
                        elif type(chunk) is ModelReasoningDelta:
                            seq = state.next_seq()
                            if emit:
                                yield ev.ReasoningDelta(run_id, seq, chunk.text)
                        elif isinstance(chunk, ModelResponse):
                            response = chunk
                    if response is None:
                        raise UnexpectedModelBehavior("the model's stream ended without a response")
                else:
                    response = await model.request(request)
                usage = response.usage
                usage.requests = 1
                usage.tool_calls = 0  # counted when calls are executed, not when the model asks
                state.usage += usage
                seq = state.next_seq()
                if emit:
                    yield ev.ModelRequestCompleted(
                        run_id, seq, state.step, usage.to_dict(), response.finish_reason
                    )
                if caps:
                    replaced = await call_hooks(caps, "after_model_request", ctx, response)
                    if replaced is not None:
                        response = replaced
                parts = response.parts
                text, reasoning, calls = _read_parts(parts)
                if not stream:
                    if reasoning:
                        seq = state.next_seq()
                        if emit:
                            yield ev.ReasoningDelta(run_id, seq, reasoning)
                    if text:
                        seq = state.next_seq()
                        if emit:
                            yield ev.TextDelta(run_id, seq, text)
                taken = self._take_answer(response, parts, text, calls)
                if taken != _TOOLS:
                    if taken == _ANSWER:
                        raise _Finish("completed", state.answer)
                    continue  # the answer was empty or invalid: the model was asked again
                # -- the tool calls of this step
                if setup.output_mode == "tool":
                    final = next((c for c in calls if c.name == FINAL_RESULT_TOOL), None)
                    if final is not None:
                        for e in self._final_result(final, calls):  # raises _Finish when valid
                            yield e
                        continue
                runnable, pending, emits = self._sort_calls(calls)
                for call in runnable:
                    seq = state.next_seq()
                    if emit:
                        yield ev.ToolCallStarted(run_id, seq, call.id, call.name, _args_view(call))
                if emits:
                    results: list[tuple[ToolResultPart, Any]] = []
                    async for e in self._execute_emitting(runnable, results, None):
                        yield e
                else:
                    results = await self._execute(runnable)
                suspended: dict[str, tuple[ToolCallPart, ToolSuspended]] | None = None
                for call, (res, raw) in zip(runnable, results, strict=True):
                    if type(raw) is ToolSuspended:
                        if suspended is None:
                            suspended = {}
                        suspended[call.id] = (call, raw)
                        continue
                    seq = state.next_seq()
                    if emit:
                        yield ev.ToolCallCompleted(
                            run_id, seq, call.id, call.name, res.content, res.is_error
                        )
                if suspended is None:
                    result_parts = [r for r, _ in results]
                else:
                    result_parts = [r for r, raw in results if type(raw) is not ToolSuspended]
                if pending or suspended:
                    for call in pending:
                        seq = state.next_seq()
                        if emit:
                            yield ev.ToolCallStarted(
                                run_id, seq, call.id, call.name, _args_view(call)
                            )
                    paused_state = self._paused_state(pending, result_parts, suspended)
                    raise _Finish("paused", paused=paused_state)
                self._after_results(calls, result_parts, results)
        except _Finish as fin:
            yield self._end(fin.status, fin.output, fin.error, fin.paused)
        except GuardrailTripped as exc:
            yield self._end("blocked", error=exc)
        except VivaceError as exc:
            yield self._end("failed", error=exc)
        except Exception as exc:  # a model, hook or capability raised: the run failed
            yield self._end("failed", error=UnexpectedError.wrap(exc))

    def _resolve(self) -> None:
        agent, opts, setup = self.agent, self.opts, self.setup
        if opts.model is None:
            setup.model = resolve_model(agent.model)
        else:  # the run's own model (tracing reads it from the context)
            setup.model = self.state.ctx.metadata["model"] = resolve_model(opts.model)
        setup.notes, setup.dynamic = [], []
        plan = tool_plan(agent)
        defs: list[ToolDefinition] | None = None
        if plan is None:  # toolsets: their tools are collected per run
            setup.tools = {}
            collect_tools(agent.tools, setup.tools, setup.notes, setup.dynamic)
        else:  # collected once and shared (while `defs` is set): never changed in place
            setup.tools, defs = plan[1], plan[2]
        for cap in setup.caps:
            if "tools" in overridden(cap):
                if defs is not None:  # the run's own tools from here on
                    setup.tools, defs = dict(setup.tools), None
                collect_tools(cap.tools(), setup.tools, setup.notes, setup.dynamic)
        settings = agent.model_settings
        if opts.model_settings:
            settings = {**settings, **opts.model_settings} if settings else opts.model_settings
        setup.settings = settings
        setup.max_steps = opts.max_steps or agent.max_steps
        if setup.dynamic:
            return  # the output is resolved once the toolsets listed their tools
        if defs is not None and setup.caps:
            defs = list(defs)  # a hook may change a request's tool list: the run's own copy
        self._resolve_output(defs)

    def _resolve_output(self, defs: list[ToolDefinition] | None = None) -> None:
        """Tool definitions for the model (``defs`` when they are known already), and how
        structured output is asked for."""
        agent, setup = self.agent, self.setup
        setup.defs = defs if defs is not None else [t.definition() for t in setup.tools.values()]
        setup.output = setup.output_mode = setup.output_spec = None
        if agent.output_type is not None and agent.output_type is not str:
            out = setup.output = output_schema(agent.output_type)
            mode = agent.output_mode or ("native" if setup.model.supports_native_output else "tool")
            setup.output_mode = mode
            if mode == "native":
                setup.output_spec = OutputSpec(out.name, out.schema, "native")
            if mode == "tool":
                final = ToolDefinition(
                    FINAL_RESULT_TOOL, "Call this tool with the final answer.", out.schema, True
                )
                setup.defs = [*setup.defs, final]

    def _end(
        self,
        status: str,
        output: Any = None,
        error: VivaceError | None = None,
        paused: PausedRun | None = None,
    ) -> ev.RunEvent:
        result = self._conclude(status, output, error, paused)
        run_id, seq = result.run_id, self.state.seq - 1
        if status == "completed":
            if not self.emit:  # only its type is read (the end of the run)
                return ev.RunCompleted(run_id, seq)
            return ev.RunCompleted(
                run_id, seq, result_to_content(output), self.state.usage.to_dict()
            )
        if status == "cancelled":
            return ev.RunCancelled(run_id, seq, error.message if error else "cancelled")
        if status == "paused":
            assert result.paused is not None
            return ev.RunPaused(
                run_id,
                seq,
                [c.to_dict() for c in result.paused.pending],
                result.paused.to_dict(),
            )
        return ev.RunFailed(run_id, seq, status, error.to_dict() if error else {})

    def _conclude(
        self,
        status: str,
        output: Any = None,
        error: VivaceError | None = None,
        paused: PausedRun | None = None,
    ) -> RunResult[Any]:
        """The run's result, its terminal event numbered (a paused run is remembered for
        ``resume`` when the agent has no storage)."""
        state = self.state
        ctx = state.ctx
        result = state.result = RunResult(  # positional: once per run
            ctx.run_id,
            status,  # type: ignore[arg-type]
            output,
            state.messages[state.new_from :],
            state.usage,
            ctx.session_id,
            ctx.user_id,
            error,
            paused,
            ctx.session_state,
            ctx.trace_id,
            ctx.span_id,
            ctx.parent_run_id,
        )
        state.seq += 1
        if paused is not None:
            paused.seq = state.seq
            if self.agent.storage is None:
                remember_paused(paused)
        return result

    def _next_request(self, instructions: str | None) -> ModelRequest:
        """The next step's model request (raises when the run was cancelled or has used up
        its steps)."""
        setup, state = self.setup, self.state
        if state.cancel_requested:
            raise _Finish("cancelled", error=RunCancelled("cancelled by request"))
        if state.step >= setup.max_steps:
            raise MaxStepsExceeded(
                f"the run reached max_steps={setup.max_steps} without a final answer",
                max_steps=setup.max_steps,
            )
        state.step += 1
        state.ctx.step = state.step
        return ModelRequest(
            state.messages, instructions, setup.defs, setup.output_spec, setup.settings
        )

    def _take_answer(
        self, response: ModelResponse, parts: list[Part], text: str, calls: list[ToolCallPart]
    ) -> int:
        """Take the model's answer into the history: ``_TOOLS`` when it called tools (to run
        now), ``_AGAIN`` when the model is asked again (empty or invalid answer), ``_ANSWER``
        for a final answer (in ``state.answer``: the run ends); a refusal fails the run."""
        setup, state = self.setup, self.state
        if response.refusal is not None or response.finish_reason == "content_filter":
            state.messages.append(response.to_message())
            raise ModelRefusal(
                response.refusal or "the provider filtered the answer (content_filter)",
                refusal=response.refusal,
            )
        if not parts:
            self._retry_model("the model returned an empty response")
            state.messages.append(
                Message("user", [TextPart("Your last answer was empty. Please answer.")])
            )
            return _AGAIN
        state.messages.append(Message("assistant", parts))
        if calls:
            return _TOOLS
        output = setup.output
        if output is None:
            state.answer = text
            return _ANSWER
        if setup.output_mode == "tool":
            self._retry_model("the model answered in text instead of calling the final_result tool")
            state.messages.append(
                Message(
                    "user",
                    [TextPart(f"Call the {FINAL_RESULT_TOOL} tool with your final answer.")],
                )
            )
            return _AGAIN
        try:
            value = output.validate_json(_strip_fences(text))
        except Exception as exc:
            detail = _validation_detail(exc)
            self._retry_model(f"the structured output did not validate: {detail}", output=True)
            state.messages.append(
                Message(
                    "user",
                    [
                        TextPart(
                            f"Your answer did not match the required JSON schema: {detail}. "
                            "Answer again with JSON only."
                        )
                    ],
                )
            )
            return _AGAIN
        state.answer = value
        return _ANSWER

    def _retry_model(self, reason: str, output: bool = False) -> None:
        state = self.state
        state.retries += 1
        if state.retries > self.agent.output_retries:
            cls = OutputValidationError if output else UnexpectedModelBehavior
            raise cls(f"{reason} (after {self.agent.output_retries} retries)")

    # -- tool calls ------------------------------------------------------------------------------

    def _sort_calls(
        self, calls: list[ToolCallPart]
    ) -> tuple[list[ToolCallPart], list[ToolCallPart], bool]:
        """``(runnable, pending approval, whether a runnable tool emits events)``; a call of
        an unknown tool is runnable (it becomes an error result)."""
        tools = self.setup.tools
        if len(calls) == 1:
            t = tools.get(calls[0].name)
            if t is None or not (t.requires_approval or t.emits_events):
                return calls, [], False
        pending: list[ToolCallPart] = []
        runnable: list[ToolCallPart] = []
        emits = False
        for call in calls:
            t = tools.get(call.name)
            if t is not None:
                if t.requires_approval:
                    pending.append(call)
                    continue
                if t.emits_events:
                    emits = True
            runnable.append(call)
        return runnable, pending, emits

    def _paused_state(
        self,
        pending: list[ToolCallPart],
        results: list[ToolResultPart],
        suspended: dict[str, tuple[ToolCallPart, ToolSuspended]] | None,
    ) -> PausedRun:
        """The run's resume state; calls of suspended tools join ``pending`` as
        ``"<call id>/<their id>"``."""
        state = self.state
        ctx = state.ctx
        held: dict[str, Any] = {}
        if suspended:
            pending = list(pending)
            for call_id, (call, exc) in suspended.items():
                inner = [
                    ToolCallPart(f"{call_id}/{p.id}", p.name, p.arguments, p.meta)
                    for p in exc.pending
                ]
                pending += inner
                held[call_id] = {
                    "name": call.name,
                    "arguments": call.arguments,
                    "state": exc.state,
                    "pending": [p.id for p in inner],
                }
        return PausedRun(
            run_id=ctx.run_id,
            agent_name=self.agent.name,
            session_id=ctx.session_id,
            user_id=ctx.user_id,
            messages=state.messages,
            new_from=state.new_from,
            pending=pending,
            results=results,
            usage=state.usage,
            step=state.step,
            session_state=ctx.session_state,
            tool_failures=state.tool_failures,
            retries=state.retries,
            trace_id=ctx.trace_id,
            span_id=ctx.span_id,
            parent_run_id=ctx.parent_run_id,
            suspended=held,
        )

    def _after_results(
        self,
        calls: list[ToolCallPart],
        result_parts: list[ToolResultPart],
        results: list[tuple[ToolResultPart, Any]],
    ) -> None:
        """Append the turn's results in call order; a ``stop_after`` tool ends the run."""
        if len(result_parts) > 1:
            order = {c.id: i for i, c in enumerate(calls)}
            result_parts.sort(key=lambda r: order.get(r.call_id, 0))
        parts: list[Part] = result_parts  # type: ignore[assignment]  # (this turn's own list)
        self.state.messages.append(Message("tool", parts))
        tools = self.setup.tools
        for res, raw in results:
            t = tools.get(res.name)
            if t is not None and t.stop_after and not res.is_error:
                raise _Finish("completed", raw)

    def _final_result(self, call: ToolCallPart, calls: list[ToolCallPart]) -> Iterator[ev.RunEvent]:
        """A ``final_result`` call: its events; a valid answer ends the run (``_Finish``), an
        invalid one is sent back to the model."""
        state = self.state
        run_id = state.ctx.run_id
        assert self.setup.output is not None
        seq = state.next_seq()
        if self.emit:
            yield ev.ToolCallStarted(run_id, seq, call.id, call.name, _args_view(call))
        try:
            args = call.arguments
            value = (
                self.setup.output.validate_json(args or "{}")
                if isinstance(args, str)
                else self.setup.output.validate_python(args)
            )
        except Exception as exc:
            detail = _validation_detail(exc)
            message = f"invalid output: {detail}"
            seq = state.next_seq()
            if self.emit:
                yield ev.ToolCallCompleted(run_id, seq, call.id, call.name, message, True)
            state.messages.append(
                Message("tool", _final_parts(call, calls, message, "the final result was invalid"))
            )
            self._retry_model(f"the structured output did not validate: {detail}", output=True)
            return
        state.messages.append(
            Message("tool", _final_parts(call, calls, None, "the final result was given"))
        )
        seq = state.next_seq()
        if self.emit:
            yield ev.ToolCallCompleted(
                run_id, seq, call.id, call.name, "final result accepted", False
            )
        raise _Finish("completed", value)

    async def _execute(
        self, calls: list[ToolCallPart], resumes: dict[str, ToolResume] | None = None
    ) -> list[tuple[ToolResultPart, Any]]:
        if not calls:
            return []
        if len(calls) == 1:
            c = calls[0]
            return [await self._execute_one(c, None, None, resumes.get(c.id) if resumes else None)]
        # Concurrent calls, structured: a call that ends the run (retry budget spent, an
        # unknown tool past its retries, a guardrail, cancellation) cancels the calls still
        # running, and the run ends only once they have settled - nothing of the run
        # outlives it (a sync tool in a thread runs to its end, unawaited). Of the calls
        # that failed by then, the first in call order names the error.
        sem = asyncio.Semaphore(self.agent.tool_concurrency)
        tasks = [
            asyncio.ensure_future(
                self._execute_one(c, None, sem, resumes.get(c.id) if resumes else None)
            )
            for c in calls
        ]
        try:
            return await asyncio.gather(*tasks)
        except BaseException as exc:
            error = exc
        running = [t for t in tasks if not t.done()]
        for t in running:
            t.cancel()
        if running:
            await asyncio.wait(running)
        if not isinstance(error, asyncio.CancelledError):
            error = next(e for t in tasks if not t.cancelled() and (e := t.exception()) is not None)
        raise error

    async def _execute_emitting(
        self,
        calls: list[ToolCallPart],
        out: list[tuple[ToolResultPart, Any]],
        resumes: dict[str, ToolResume] | None,
    ) -> AsyncIterator[ev.RunEvent]:
        """Execute ``calls`` (results into ``out``) while yielding the events their tools emit
        through ``ctx.emit``, numbered in this run's sequence, as they come."""
        state = self.state
        ctx = state.ctx
        run_id = ctx.run_id
        queue: asyncio.Queue[ev.RunEvent | None] = asyncio.Queue()
        ctx.emit = queue.put_nowait
        task = asyncio.ensure_future(self._execute(calls, resumes))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (e := await queue.get()) is not None:
                e.run_id = run_id
                e.seq = state.next_seq()
                if self.emit:
                    yield e
        finally:
            ctx.emit = None
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        out.extend(task.result())

    async def _execute_one(
        self,
        call: ToolCallPart,
        arguments: dict[str, Any] | None,
        sem: asyncio.Semaphore | None = None,
        resume: ToolResume | None = None,
    ) -> tuple[ToolResultPart, Any]:
        """Run one call; failures become error results within the tool's retry budget. A tool
        that suspends itself gives ``(placeholder, ToolSuspended)``."""
        state, setup = self.state, self.setup
        state.usage.tool_calls += 1
        t = setup.tools.get(call.name)
        if t is None:
            self._retry_model(f"the model called an unknown tool {call.name!r}")
            known = ", ".join(sorted(setup.tools)) or "none"
            return ToolResultPart(
                call.id, call.name, f"unknown tool {call.name!r}; available tools: {known}", True
            ), None
        ctx = state.ctx.for_tool_call(call.id, state.tool_failures.get(t.name, 0), resume)
        try:
            args = arguments if arguments is not None else t.validate(call.arguments)
            hooks = setup.caps
            if hooks:
                replaced = await call_hooks(hooks, "before_tool_call", ctx, call, args)
                if replaced is not None:
                    args = replaced
            token = _CURRENT.set(ctx)  # a run started by the tool joins this run's trace
            try:
                if sem is None:
                    raw = await t.call(args, ctx)
                else:
                    async with sem:
                        raw = await t.call(args, ctx)
            finally:
                _CURRENT.reset(token)
            if hooks:
                replaced = await call_hooks(hooks, "after_tool_call", ctx, call, raw)
                if replaced is not None:
                    raw = replaced
        except (GuardrailTripped, RunCancelled):
            raise
        except ToolSuspended as exc:
            return ToolResultPart(call.id, call.name, "waiting for a decision", True), exc
        except (ToolArgumentsError, ModelRetry, ToolTimeout) as exc:
            return self._tool_failed(t, call, exc.message), None
        except Exception as exc:
            return self._tool_failed(t, call, _error_text(exc)), None
        return ToolResultPart(call.id, call.name, result_to_content(raw)), raw

    def _tool_failed(self, t: BaseTool, call: ToolCallPart, message: str) -> ToolResultPart:
        state = self.state
        n = state.tool_failures[t.name] = state.tool_failures.get(t.name, 0) + 1
        budget = t.max_retries if t.max_retries is not None else self.agent.tool_retries
        if n > budget:
            raise ToolRetriesExceeded(
                f"tool {t.name!r} failed {n} times (budget {budget}); last error: {message}",
                tool=t.name,
            )
        return ToolResultPart(call.id, call.name, message, True)

    # -- resume ----------------------------------------------------------------------------------

    async def _resume(self, paused: PausedRun) -> AsyncIterator[ev.RunEvent]:
        approvals = self.opts.approvals or {}
        state = self.state
        run_id = state.ctx.run_id
        results = list(paused.results)
        raw_results: list[tuple[ToolResultPart, Any]] = [(r, None) for r in results]
        held = paused.suspended
        for call in paused.pending:
            if held and call.id.split("/", 1)[0] in held:
                continue  # a suspended tool's call: decided by running that tool again below
            decision = approvals[call.id]
            if decision is False or isinstance(decision, Reject):
                reason = decision.reason if isinstance(decision, Reject) else Reject().reason
                res = ToolResultPart(call.id, call.name, f"rejected: {reason}", True)
                pair: tuple[ToolResultPart, Any] = (res, None)
            else:
                args = None
                if isinstance(decision, Approve) and decision.arguments is not None:
                    t = self.setup.tools.get(call.name)
                    args = t.validate(decision.arguments) if t is not None else None
                    call = ToolCallPart(call.id, call.name, decision.arguments, call.meta)
                pair = await self._execute_one(call, args)
            seq = state.next_seq()
            if self.emit:
                yield ev.ToolCallCompleted(
                    run_id, seq, call.id, call.name, pair[0].content, pair[0].is_error
                )
            results.append(pair[0])
            raw_results.append(pair)
        if held:
            calls: list[ToolCallPart] = []
            resumes: dict[str, ToolResume] = {}
            for call_id, info in held.items():
                calls.append(ToolCallPart(call_id, info["name"], info["arguments"]))
                resumes[call_id] = ToolResume(
                    info.get("state"),
                    {pid.split("/", 1)[1]: approvals[pid] for pid in info["pending"]},
                )
            out: list[tuple[ToolResultPart, Any]] = []
            async for e in self._execute_emitting(calls, out, resumes):
                yield e
            again: dict[str, tuple[ToolCallPart, ToolSuspended]] = {}
            for call, pair in zip(calls, out, strict=True):
                if type(pair[1]) is ToolSuspended:
                    again[call.id] = (call, pair[1])
                    continue
                seq = state.next_seq()
                if self.emit:
                    yield ev.ToolCallCompleted(
                        run_id,
                        seq,
                        call.id,
                        call.name,
                        pair[0].content,
                        pair[0].is_error,
                    )
                results.append(pair[0])
                raw_results.append(pair)
            if again:
                raise _Finish("paused", paused=self._paused_state([], results, again))
        self._after_results(self._last_calls(), results, raw_results)

    def _last_calls(self) -> list[ToolCallPart]:
        for m in reversed(self.state.messages):
            if m.role == "assistant":
                return m.tool_calls
        return []


def _final_parts(
    call: ToolCallPart, calls: list[ToolCallPart], error: str | None, why_not_run: str
) -> list[Part]:
    """Results for a final-result call and the other calls of its turn (which never run)."""
    parts: list[Part] = [
        ToolResultPart(call.id, call.name, error or "final result accepted", error is not None)
    ]
    parts += [
        ToolResultPart(c.id, c.name, f"not run: {why_not_run}", True)
        for c in calls
        if c is not call
    ]
    return parts


def check_approvals(agent: Agent[Any, Any], paused: PausedRun, approvals: dict[str, Any]) -> None:
    """Raise :class:`ResumeError` unless ``approvals`` decide every pending call validly."""
    pending = {c.id: c for c in paused.pending}
    unknown = set(approvals) - set(pending)
    if unknown:
        raise ResumeError(
            f"approvals name calls that are not pending: {sorted(unknown)}; pending: {sorted(pending)}"
        )
    missing = set(pending) - set(approvals)
    if missing:
        raise ResumeError(f"no decision for pending calls: {sorted(missing)}")
    tools: dict[str, BaseTool] | None = None
    held = paused.suspended
    for call_id, decision in approvals.items():
        if not isinstance(decision, Approve | Reject | bool):
            raise ResumeError(f"approval for {call_id} must be Approve, Reject or a bool")
        if held and call_id.split("/", 1)[0] in held:
            continue  # a child run's call: checked when that run resumes
        if isinstance(decision, Approve) and decision.arguments is not None:
            if tools is None:
                tools = static_tools(agent)
            t = tools.get(pending[call_id].name)
            if t is None:  # a toolset's tool (listed per run): validated when it runs
                continue
            try:
                t.validate(decision.arguments)
            except ToolArgumentsError as exc:
                raise ResumeError(f"edited arguments for {call_id}: {exc.message}") from None


def _read_parts(parts: list[Part]) -> tuple[str, str, list[ToolCallPart]]:
    """A response's ``(text, reasoning, tool calls)``, in one pass over its parts."""
    if len(parts) == 1:  # the usual answer: one text, or one call
        p = parts[0]
        if type(p) is TextPart:
            return p.text, "", []
        if type(p) is ToolCallPart:
            return "", "", [p]
    text = reasoning = ""
    calls: list[ToolCallPart] = []
    for p in parts:
        if type(p) is TextPart:
            text += p.text
        elif type(p) is ToolCallPart:
            calls.append(p)
        elif type(p) is ReasoningPart:
            reasoning += p.text
    return text, reasoning, calls


def _args_view(call: ToolCallPart) -> Any:
    a = call.arguments
    if isinstance(a, str):
        try:
            return json.loads(a) if a else {}
        except ValueError:
            return a
    return a


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t


def _validation_detail(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors(include_url=False)
            return "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg')}"
                for e in items
            )
        except Exception:
            pass
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
