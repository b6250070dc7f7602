"""Typed errors of workflows (all in the :mod:`vivace.errors` families)."""

from __future__ import annotations

from typing import Any

from ..errors import RunError, StepNotSuspended, UserError, WorkflowRunNotFound

__all__ = [
    "ResumeDataInvalid",
    "StepFailed",
    "StepInterrupted",
    "StepNotSuspended",
    "StepTimeout",
    "WorkflowCancelled",
    "WorkflowDefinitionError",
    "WorkflowInputInvalid",
    "WorkflowRunExists",
    "WorkflowRunNotFound",
    "WorkflowTypeError",
]


class WorkflowDefinitionError(UserError):
    """A workflow is built wrong (unknown step kind, duplicate step ids, a bad option)."""

    code = "workflow_definition_error"


class WorkflowTypeError(WorkflowDefinitionError):
    """A step's input does not accept the previous step's output (raised when the workflow is
    built). ``source``/``target`` name both steps, ``source_type``/``target_type`` their types."""

    code = "workflow_type_error"

    def __init__(
        self, message: str, *, source: str, target: str, source_type: str, target_type: str
    ) -> None:
        super().__init__(
            message,
            source=source,
            target=target,
            source_type=source_type,
            target_type=target_type,
        )
        self.source = source
        self.target = target


class WorkflowInputInvalid(UserError):
    """The input given to a run does not match the workflow's input type."""

    code = "workflow_input_invalid"


class WorkflowRunExists(UserError):
    """A run with this id already exists (run ids are chosen once)."""

    code = "workflow_run_exists"


class ResumeDataInvalid(UserError):
    """The resume data does not match the step's resume schema (nothing was written)."""

    code = "resume_data_invalid"


class StepFailed(RunError):
    """A step raised (after its retries). ``step`` is its path; the original error is the
    ``__cause__`` and is described in ``details["error"]``."""

    code = "step_failed"

    def __init__(self, message: str, *, step: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message, step=step, error=error)
        self.step = step


class StepTimeout(StepFailed):
    """A step did not finish within its ``timeout``."""

    code = "step_timeout"


class StepInterrupted(StepFailed):
    """A step that opted out of re-running (``rerun=False``) was in flight when its process
    died; the run fails instead of running it a second time."""

    code = "step_interrupted"


class WorkflowCancelled(RunError):
    """The run was cancelled."""

    code = "workflow_cancelled"
