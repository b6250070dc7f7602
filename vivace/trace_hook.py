"""The seam through which lower layers (models, MCP, memory, storage) report their work to
tracing without importing :mod:`vivace.observability`, and the current trace context.

:data:`HOOK` is ``None`` while tracing is off: a caller pays one module-attribute read.
:func:`vivace.observability.configure` (or an agent's ``Tracing`` capability) installs an
object with the :class:`Hook` methods::

    from vivace import trace_hook

    hook = trace_hook.HOOK
    if hook is None:
        return await call()
    with hook.span("tools/call search", {"mcp.method.name": "tools/call"}, kind=CLIENT):
        return await call()
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = ["CLIENT", "HOOK", "INTERNAL", "TRACE_CONTEXT", "Hook"]

INTERNAL, CLIENT = 1, 3  # OTLP span kinds


class Hook(Protocol):
    """What tracing offers lower layers."""

    def span(
        self,
        name: str,
        attributes: dict[str, Any] | None = None,
        *,
        kind: int = INTERNAL,
        trace_id: str | None = None,
        parent_span_id: str | None = None,
        parent_pending: bool = False,
        span_id: str | None = None,
        ok: tuple[type[BaseException], ...] = (),
    ) -> AbstractContextManager[Any]:
        """A span around a block, nested under the innermost open span (an explicit parent
        with ``trace_id``/``parent_span_id``; ``parent_pending``: that parent, a run's span,
        has not started yet and starts with this span; ``span_id``: the id to use, e.g. a
        run's own). An exception marks it failed, unless it is one of ``ok`` (control flow,
        such as a suspension). Yields the span (``.attributes`` may be added to) or ``None``
        when nothing is traced."""
        ...

    def fail(self, span: Any, error: BaseException | str) -> None:
        """Mark ``span`` (from :meth:`span`) failed with ``error`` (its message redacted)."""
        ...

    def model_retry(
        self,
        provider: str | None,
        model: str | None,
        attempt: int,
        error: BaseException,
        delay: float = 0.0,
    ) -> None:
        """A model attempt failed; attempt number ``attempt`` (1-based) follows in ``delay`` s."""
        ...

    def model_fallback(self, failed: Any, following: Any, error: BaseException) -> None:
        """Model ``failed`` failed (after its retries); ``following`` is tried next."""
        ...


HOOK: Hook | None = None
"""The installed hook, or ``None`` (tracing off)."""


TRACE_CONTEXT: ContextVar[tuple[str, str | None, str | None] | None] = ContextVar(
    "vivace_trace_context", default=None
)
"""``(trace_id, span_id, run_id)`` of the code running now: a traced run sets it for its
duration, the server for each request (``span_id``: the caller's, from ``traceparent``;
``run_id``: None). Log lines read it (:mod:`vivace.observability.logs`)."""
