"""What a workflow run returns: :class:`WorkflowResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import RunError, VivaceError

if TYPE_CHECKING:
    from ..models.base import Usage
    from .store import StepRecord

__all__ = ["SuspendedStep", "WorkflowResult"]

OutT = TypeVar("OutT", covariant=True)


class SuspendedStep:
    """A parked step: its ``path``, ``payload`` (what it asked for), ``kind`` (``suspend``,
    ``approval`` for agent tool approvals, ``event`` for ``wait_for_event``) and the
    ``event`` name it waits for."""

    __slots__ = ("event", "kind", "path", "payload")

    def __init__(self, path: str, payload: Any, kind: str = "suspend", event: str | None = None):
        self.path = path
        self.payload = payload
        self.kind = kind
        self.event = event

    def to_dict(self) -> dict[str, Any]:
        from .typecheck import to_jsonable

        return {
            "path": self.path,
            "payload": to_jsonable(self.payload),
            "kind": self.kind,
            "event": self.event,
        }

    def __repr__(self) -> str:
        return f"<SuspendedStep {self.path} ({self.kind})>"


class WorkflowResult(Generic[OutT]):
    """The outcome of a run (or of its latest segment, after a resume).

    ``status``: ``completed``, ``bailed`` (a step ended it early, successfully),
    ``suspended``/``waiting`` (see ``suspended``), ``failed`` (``error`` is a
    :class:`~vivace.workflows.errors.StepFailed` naming the step's path), ``cancelled``, or
    ``running`` (resumed data was handed to the worker running it). ``steps`` maps each
    executed step's path to its record (status, output, timings, attempts); ``usage`` and
    ``cost`` sum the agent steps'.
    """

    __slots__ = (
        "_output",
        "error",
        "origin_run_id",
        "parent_run_id",
        "run_id",
        "span_id",
        "state",
        "status",
        "steps",
        "suspended",
        "trace_id",
        "usage",
        "workflow",
    )

    def __init__(
        self,
        run_id: str,
        workflow: str,
        status: str,
        output: Any = None,
        *,
        steps: dict[str, StepRecord] | None = None,
        error: VivaceError | None = None,
        suspended: list[SuspendedStep] | None = None,
        state: Any = None,
        usage: Usage | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_run_id: str | None = None,
        origin_run_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.status = status
        self._output = output
        self.steps = steps if steps is not None else {}
        self.error = error
        self.suspended = suspended or []
        self.state = state
        self.usage = usage
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_run_id = parent_run_id
        self.origin_run_id = origin_run_id

    @property
    def output(self) -> OutT:
        """The final output (``bailed``: the bailing step's value). Raises the run's error
        when it failed or was cancelled; None while suspended."""
        if self.status in ("failed", "cancelled"):
            raise self.error or RunError(f"workflow run {self.run_id} ended {self.status}")
        return self._output

    @property
    def cost(self) -> float | None:
        """USD spent by the agent steps (None when no price is known)."""
        return getattr(self.usage, "cost", None) if self.usage is not None else None

    def step_output(self, path: str) -> Any:
        """The output of the step at ``path``."""
        return self.steps[path].output

    def to_dict(self) -> dict[str, Any]:
        """JSON form: status, output, error, suspended steps, step records, usage, state."""
        from .typecheck import to_jsonable

        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "output": to_jsonable(self._output),
            "error": self.error.to_dict() if self.error is not None else None,
            "suspended": [s.to_dict() for s in self.suspended],
            "steps": {
                p: {
                    "status": r.status,
                    "output": to_jsonable(r.output),
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "duration": max(0.0, r.finished_at - r.started_at) if r.finished_at else None,
                    "attempts": r.attempts,
                    "error": r.error,
                    "payload": to_jsonable(r.payload),
                    "usage": r.usage,
                }
                for p, r in self.steps.items()
            },
            "usage": self.usage.to_dict() if self.usage is not None else None,
            "state": to_jsonable(self.state),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_run_id": self.parent_run_id,
            "origin_run_id": self.origin_run_id,
        }

    def __repr__(self) -> str:
        return f"<WorkflowResult {self.workflow}/{self.run_id} {self.status}>"
