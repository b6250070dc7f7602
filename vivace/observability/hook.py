"""Tracing's side of :mod:`vivace.trace_hook`: spans for what lower layers report (MCP calls,
memory operations, storage), and one span per model attempt (retries and fallbacks).

Every span nests under the *innermost* open span of the calling code: an explicit span
(:meth:`Tracer.span`, or one opened here), the tool call running now, or the run. They are
all ancestors of the current point of execution, so the innermost is the one that started
last.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .. import trace_hook
from ..trace_hook import TRACE_CONTEXT
from . import genai as g
from .span import Span, SpanKind, new_span_id
from .tracer import CURRENT_SPAN

if TYPE_CHECKING:
    from .capability import _RunSpans
    from .tracer import Tracer

__all__ = ["RUN_SPANS", "RemoteParent", "TraceHook", "innermost", "install", "is_local_root"]

RUN_SPANS: ContextVar[_RunSpans | None] = ContextVar("vivace_run_spans", default=None)
"""The spans of the run the calling code belongs to (set by the tracing capability)."""

ATTEMPT = "vivace.model.attempt"
FALLBACK_FROM = "vivace.model.fallback_from"


def innermost(default: Tracer | None = None) -> tuple[Tracer | None, Span | None]:
    """The tracer and the innermost open span of the calling code (``(default, None)``
    outside any span)."""
    from ..tools.context import current_run_context

    best = CURRENT_SPAN.get()
    if best is not None and best.end_ns:
        best = None
    spans = RUN_SPANS.get()
    if spans is None:
        if best is None:  # a request's caller (traceparent): a parent in another process
            context = TRACE_CONTEXT.get()
            if context is not None and context[1] is not None and context[2] is None:
                best = RemoteParent(context[0], context[1])
        return default, best
    run = spans.run
    if not run.end_ns and (best is None or run.start_ns > best.start_ns):
        best = run
    ctx = current_run_context()
    if ctx is not None and ctx.tool_call_id is not None and ctx.run_id == spans.run_id:
        tool = spans.tools.get(ctx.tool_call_id)
        if (
            tool is not None
            and not tool.end_ns
            and (best is None or tool.start_ns >= best.start_ns)
        ):
            best = tool
    return spans.tracer, best


class RemoteParent(Span):
    """The caller's span in another process (from a ``traceparent`` header): a parent only,
    never ended or exported. A span under it is its trace's local root."""

    __slots__ = ()

    def __init__(self, trace_id: str, span_id: str) -> None:
        super().__init__("remote", trace_id, span_id)


def is_local_root(parent: Span | None) -> bool:
    return parent is None or type(parent) is RemoteParent


class TraceHook:
    """What :data:`vivace.trace_hook.HOOK` is while tracing is on."""

    __slots__ = ("tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def span(
        self,
        name: str,
        attributes: dict[str, Any] | None = None,
        *,
        kind: int = SpanKind.INTERNAL,
        trace_id: str | None = None,
        parent_span_id: str | None = None,
        parent_pending: bool = False,
        span_id: str | None = None,
        ok: tuple[type[BaseException], ...] = (),
    ) -> Iterator[Span | None]:
        tracer, parent = innermost(self.tracer)
        if tracer is None:
            yield None
            return
        parent_id: str | None
        root = is_local_root(parent)
        if trace_id is not None and (parent is None or parent.trace_id != trace_id):
            parent_id = parent_span_id
            root = parent_id is None
        elif parent is not None:
            trace_id, parent_id = parent.trace_id, parent.span_id
        else:
            trace_id, parent_id = new_span_id() + new_span_id(), None
        if parent is not None and type(parent) is RemoteParent and parent_id == parent.span_id:
            attributes = {**(attributes or {}), g.LOCAL_ROOT: True}
        span = tracer.start_span(
            name,
            trace_id,
            parent_id,
            kind=kind,
            attributes=attributes,
            span_id=span_id,
            start_ns=tracer.take_start(span_id),
        )
        if parent_pending and parent_id is not None:
            tracer.pending_start(parent_id, span.start_ns)
        token = CURRENT_SPAN.set(span)
        try:
            yield span
        except BaseException as exc:
            if not isinstance(exc, ok):
                tracer.record_error(span, exc)
            raise
        finally:
            CURRENT_SPAN.reset(token)
            tracer.end_span(span, root=root)

    def fail(self, span: Span | None, error: BaseException | str) -> None:
        if span is not None:
            self.tracer.record_error(span, error)

    # -- model attempts ------------------------------------------------------------------------

    def model_retry(
        self,
        provider: str | None,
        model: str | None,
        attempt: int,
        error: BaseException,
        delay: float = 0.0,
    ) -> None:
        spans = RUN_SPANS.get()
        if spans is None or spans.model is None:
            return
        attrs = dict(spans.model_attrs)
        attrs[ATTEMPT] = attempt
        _next_attempt(spans, error, attrs, spans.model.name, delay)

    def model_fallback(self, failed: Any, following: Any, error: BaseException) -> None:
        spans = RUN_SPANS.get()
        if spans is None or spans.model is None:
            return
        provider, model = g.model_parts(following)
        spans.model_info = (provider, model)
        attrs = dict(spans.model_attrs)
        attrs[g.PROVIDER] = g.provider_name(provider)
        if model:
            attrs[g.REQUEST_MODEL] = model
        else:
            attrs.pop(g.REQUEST_MODEL, None)
        attrs[FALLBACK_FROM] = getattr(failed, "id", None) or str(failed)
        spans.model_attrs = {k: v for k, v in attrs.items() if k != FALLBACK_FROM}
        _next_attempt(spans, error, attrs, f"chat {model}" if model else "chat", 0.0)


def _next_attempt(
    spans: _RunSpans, error: BaseException, attrs: dict[str, Any], name: str, delay: float
) -> None:
    """End the current model attempt as failed and open the next one."""
    tracer = spans.tracer
    failed = spans.model
    assert failed is not None
    status = getattr(error, "status", None)
    if isinstance(status, int):
        failed.attributes["http.response.status_code"] = status
    tracer.record_error(failed, error)
    now = time.time_ns()
    tracer.end_span(failed, end_ns=now)
    spans.model = tracer.start_span(
        name,
        failed.trace_id,
        failed.parent_span_id,
        kind=SpanKind.CLIENT,
        attributes=attrs,
        start_ns=now + int(delay * 1e9),
    )


def install(tracer: Tracer, *, replace: bool) -> None:
    """Make ``tracer`` the hook's default (``replace=False``: only when none is installed)."""
    if replace or trace_hook.HOOK is None:
        trace_hook.HOOK = TraceHook(tracer)


def uninstall() -> None:
    trace_hook.HOOK = None
