"""Tracing of a run, as a capability: the run, each model request and each tool call become
OpenTelemetry GenAI spans, nested as they happen (a subagent's run inside its parent's tool
call). :func:`vivace.observability.configure` adds it to every agent; ``Agent(capabilities=
[Tracing(tracer)])`` adds it to one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import trace_hook
from ..agent.capability import Capability
from . import genai as g
from .cost import cost_usd
from .hook import RUN_SPANS, innermost, install, is_local_root
from .logs import TRACE_CONTEXT
from .span import ERROR, Span, SpanKind

if TYPE_CHECKING:
    from ..agent.result import RunResult
    from ..messages import Message, ToolCallPart
    from ..models.base import ModelRequest, ModelResponse
    from ..tools.context import RunContext
    from .tracer import Tracer

__all__ = ["Tracing"]

_MAX_RUNS = 10_000


class _RunSpans:
    __slots__ = (
        "model",
        "model_attrs",
        "model_info",
        "root",
        "run",
        "run_id",
        "spans_token",
        "token",
        "tools",
        "tracer",
    )

    def __init__(self, tracer: Tracer, run_id: str, run: Span, root: bool) -> None:
        self.tracer = tracer
        self.run_id = run_id
        self.run = run
        self.root = root
        self.model: Span | None = None  # the open model attempt
        self.model_attrs: dict[str, Any] = {}  # its request attributes (for the next attempt)
        self.model_info: tuple[str | None, str | None] = (None, None)
        self.tools: dict[str, Span] = {}
        self.token: Any = None
        self.spans_token: Any = None


def _settings_attrs(attrs: dict[str, Any], settings: dict[str, Any] | None) -> None:
    if settings:
        v = settings.get("max_tokens")
        if v is not None:
            attrs[g.REQUEST_MAX_TOKENS] = v
        v = settings.get("temperature")
        if v is not None:
            attrs[g.REQUEST_TEMPERATURE] = float(v)
        v = settings.get("top_p")
        if v is not None:
            attrs[g.REQUEST_TOP_P] = float(v)


class Tracing(Capability):
    """Trace every run of the agents it is given to (see :class:`~vivace.observability.Tracer`)."""

    __slots__ = ("tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        install(tracer, replace=False)

    # -- run -----------------------------------------------------------------------------------

    def _open_run(self, ctx: RunContext[Any], resumed: bool) -> _RunSpans:
        tracer = self.tracer
        if trace_hook.HOOK is None:  # tracing was disabled, but this agent traces its runs
            install(tracer, replace=False)
        trace_id = ctx.trace_id or ctx.run_id
        # the tool call this run was started in, a workflow step or the user's own span
        _, parent = innermost()
        if parent is not None and parent.trace_id != trace_id:
            parent = None
        name = ctx.agent_name or "agent"
        attrs: dict[str, Any] = {
            g.OPERATION: "invoke_agent",
            g.AGENT_NAME: name,
            g.SPAN_TYPE: "agent_run",
            g.RUN_ID: ctx.run_id,
        }
        agent = ctx.agent
        if agent is not None:
            attrs[g.AGENT_ID] = getattr(agent, "id", name)
            desc = getattr(agent, "description", None)
            if desc:
                attrs[g.AGENT_DESCRIPTION] = desc
            provider, model = g.model_parts(_run_model(ctx))
            if model:
                attrs[g.REQUEST_MODEL] = model
                attrs[g.PROVIDER] = g.provider_name(provider)
        if ctx.session_id:
            attrs[g.CONVERSATION_ID] = ctx.session_id
            attrs[g.SESSION_ID] = ctx.session_id
        if ctx.user_id:
            attrs[g.USER_ID] = ctx.user_id
        if ctx.parent_run_id:
            attrs[g.PARENT_RUN_ID] = ctx.parent_run_id
        if resumed:
            attrs["vivace.resumed"] = True
        if parent is not None and is_local_root(parent):  # its parent is another process's
            attrs[g.LOCAL_ROOT] = True
        span = tracer.start_span(
            f"invoke_agent {name}",
            trace_id,
            parent if parent is not None else None,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            # the run's own span id is the exported one; a resumed segment gets a new id
            span_id=None if resumed else ctx.span_id,
            start_ns=0 if resumed else tracer.take_start(ctx.span_id),  # its storage load
        )
        if resumed and parent is None and ctx.span_id:
            span.parent_span_id = ctx.span_id
        spans = _RunSpans(tracer, ctx.run_id, span, is_local_root(parent) and not resumed)
        runs = tracer._runs
        if len(runs) >= _MAX_RUNS:
            runs.pop(next(iter(runs)))
        runs[ctx.run_id] = spans
        spans.token = TRACE_CONTEXT.set((trace_id, span.span_id, ctx.run_id))
        spans.spans_token = RUN_SPANS.set(spans)
        return spans

    def _spans(self, ctx: RunContext[Any]) -> _RunSpans:
        spans = self.tracer._runs.get(ctx.run_id)
        if spans is None:  # a resumed run (before_run is not called for it)
            spans = self._open_run(ctx, True)
        return spans

    def before_run(self, ctx: RunContext[Any], input: Message) -> None:
        spans = self._open_run(ctx, False)
        if self.tracer.capture_content:
            spans.run.attributes[g.INPUT_MESSAGES] = self.tracer.content([input.to_dict()])
        return None

    def after_run(self, ctx: RunContext[Any], result: RunResult[Any]) -> None:
        tracer = self.tracer
        spans = tracer._runs.pop(ctx.run_id, None)
        if spans is None:
            return None
        now = time.time_ns()
        error = result.error
        if spans.model is not None:  # the model request failed (the run failed with it)
            if error is not None:
                tracer.record_error(spans.model, error)
            tracer.end_span(spans.model, end_ns=now)
        if spans.tools:
            fallback = None if error is None else (error.message or type(error).__name__)
            self._close_tools(ctx, spans, now, fallback)
        run = spans.run
        attrs = run.attributes
        attrs[g.RUN_STATUS] = result.status
        u = result.usage
        attrs[g.INPUT_TOKENS] = u.input_tokens
        attrs[g.OUTPUT_TOKENS] = u.output_tokens
        if u.cached_tokens:
            attrs[g.CACHED_TOKENS] = u.cached_tokens
        if u.reasoning_tokens:
            attrs[g.REASONING_TOKENS] = u.reasoning_tokens
        attrs["vivace.usage.requests"] = u.requests
        attrs["vivace.usage.tool_calls"] = u.tool_calls
        cost = attrs.pop("_cost", None)
        if cost is not None:
            attrs[g.COST] = round(cost, 10)
        if error is not None and result.status in ("failed", "blocked"):
            tracer.record_error(run, error)
        elif result.status == "cancelled":
            run.status_message = "cancelled"
        if tracer.capture_content and result.status == "completed":
            attrs[g.OUTPUT_MESSAGES] = tracer.content(
                [{"role": "assistant", "output": _jsonable(result.output)}]
            )
        tracer.end_span(run, root=spans.root, end_ns=now)
        _reset(TRACE_CONTEXT, spans.token)
        _reset(RUN_SPANS, spans.spans_token)
        return None

    # -- model requests ------------------------------------------------------------------------

    def before_model_request(self, ctx: RunContext[Any], request: ModelRequest) -> None:
        tracer = self.tracer
        spans = self._spans(ctx)
        if spans.model is not None:  # should not happen; never leave a span open
            tracer.end_span(spans.model)
        if spans.tools:
            self._close_tools(ctx, spans, time.time_ns())
        provider, model = g.model_parts(_run_model(ctx))
        spans.model_info = (provider, model)
        attrs: dict[str, Any] = {
            g.OPERATION: "chat",
            g.PROVIDER: g.provider_name(provider),
            g.SPAN_TYPE: "model_request",
            g.AGENT_NAME: ctx.agent_name or "agent",
            g.STEP: ctx.step,
            g.RUN_ID: ctx.run_id,
        }
        if model:
            attrs[g.REQUEST_MODEL] = model
        _settings_attrs(attrs, request.settings)
        if ctx.session_id:
            attrs[g.CONVERSATION_ID] = ctx.session_id
        if tracer.capture_content:
            attrs[g.INPUT_MESSAGES] = tracer.content([m.to_dict() for m in request.messages])
            if request.instructions:
                attrs[g.SYSTEM_INSTRUCTIONS] = tracer.content(request.instructions)
            if request.tools:
                attrs[g.TOOL_DEFINITIONS] = tracer.content(
                    [
                        {"type": "function", "name": t.name, "description": t.description}
                        for t in request.tools
                    ]
                )
        spans.model_attrs = attrs
        spans.model = tracer.start_span(
            f"chat {model}" if model else "chat",
            spans.run.trace_id,
            spans.run,
            kind=SpanKind.CLIENT,
            attributes=dict(attrs),
        )
        return None

    def after_model_request(self, ctx: RunContext[Any], response: ModelResponse) -> None:
        tracer = self.tracer
        spans = tracer._runs.get(ctx.run_id)
        if spans is None or spans.model is None:
            return None
        span, spans.model = spans.model, None
        attrs = span.attributes
        provider, requested = spans.model_info
        if response.provider and response.provider != provider:
            attrs[g.PROVIDER] = g.provider_name(response.provider)
            provider = response.provider
        if response.model_name:
            attrs[g.RESPONSE_MODEL] = response.model_name
            if requested is None or response.provider != spans.model_info[0]:
                attrs[g.REQUEST_MODEL] = requested or response.model_name
                span.name = f"chat {attrs[g.REQUEST_MODEL]}"
        if response.response_id:
            attrs[g.RESPONSE_ID] = response.response_id
        attrs[g.FINISH_REASONS] = [response.finish_reason]
        u = response.usage
        attrs[g.INPUT_TOKENS] = u.input_tokens
        attrs[g.OUTPUT_TOKENS] = u.output_tokens
        if u.cached_tokens:
            attrs[g.CACHED_TOKENS] = u.cached_tokens
        if u.reasoning_tokens:
            attrs[g.REASONING_TOKENS] = u.reasoning_tokens
        cost = cost_usd(provider, response.model_name or requested, u)
        if cost is not None:
            attrs[g.COST] = round(cost, 10)
            run_attrs = spans.run.attributes
            run_attrs["_cost"] = run_attrs.get("_cost", 0.0) + cost
        if tracer.capture_content:
            attrs[g.OUTPUT_MESSAGES] = tracer.content([response.to_message().to_dict()])
        tracer.end_span(span)
        return None

    # -- tool calls ----------------------------------------------------------------------------

    def before_tool_call(
        self, ctx: RunContext[Any], call: ToolCallPart, arguments: dict[str, Any]
    ) -> None:
        tracer = self.tracer
        spans = self._spans(ctx)
        attrs: dict[str, Any] = {
            g.OPERATION: "execute_tool",
            g.TOOL_NAME: call.name,
            g.TOOL_CALL_ID: call.id,
            g.TOOL_TYPE: "function",
            g.SPAN_TYPE: "tool_call",
            g.AGENT_NAME: ctx.agent_name or "agent",
            g.RUN_ID: ctx.run_id,
        }
        if tracer.capture_content:
            attrs[g.TOOL_ARGUMENTS] = tracer.content(arguments)
        spans.tools[call.id] = tracer.start_span(
            f"execute_tool {call.name}", spans.run.trace_id, spans.run, attributes=attrs
        )
        return None

    def after_tool_call(self, ctx: RunContext[Any], call: ToolCallPart, result: Any) -> None:
        tracer = self.tracer
        spans = tracer._runs.get(ctx.run_id)
        if spans is None:
            return None
        span = spans.tools.pop(call.id, None)
        if span is None:
            return None
        if tracer.capture_content:
            span.attributes[g.TOOL_RESULT] = tracer.content(_jsonable(result))
        tracer.end_span(span)
        return None

    def _close_tools(
        self, ctx: RunContext[Any], spans: _RunSpans, now: int, fallback: str | None = None
    ) -> None:
        """End tool spans whose call failed (no ``after_tool_call`` for them): the error is
        the call's result in the run's messages."""
        tracer = self.tracer
        errors = _tool_errors(ctx.messages)
        for call_id, span in spans.tools.items():
            message = errors.get(call_id)
            span.status = ERROR
            span.attributes[g.ERROR_TYPE] = "tool_error"
            span.status_message = tracer.redactor.text(
                message or fallback or "the tool call did not finish"
            )
            tracer.end_span(span, end_ns=now)
        spans.tools.clear()


def _run_model(ctx: RunContext[Any]) -> Any:
    """The model this run uses: the run's own (``model=`` of the run), else the agent's."""
    model = ctx.metadata.get("model")
    if model is None:
        model = getattr(ctx.agent, "model", None)
    return model


def _reset(var: Any, token: Any) -> None:
    if token is None:
        return
    try:
        var.reset(token)
    except ValueError:  # reset in another context: just clear it
        var.set(None)


def _tool_errors(messages: list[Any]) -> dict[str, str]:
    from ..messages import ToolResultPart

    for m in reversed(messages[-3:]):
        if m.role == "tool":
            return {
                p.call_id: p.content if isinstance(p.content, str) else str(p.content)
                for p in m.parts
                if type(p) is ToolResultPart and p.is_error
            }
    return {}


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return value
