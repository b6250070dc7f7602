"""Workflows: typed steps with control flow, suspend/resume anywhere, durable after every step.

.. code-block:: python

    from vivace.workflows import Workflow, StepContext, step

    @step
    def fetch(order_id: str) -> Order: ...

    @step(resume=Approval)
    async def approve(order: Order, ctx: StepContext) -> Order:
        decision = await ctx.suspend({"amount": order.amount})
        ...

    wf = Workflow("orders", storage="sqlite:///vivace.db").then(fetch).then(approve)
    result = await wf.arun("o-1")            # status "suspended"
    await wf.aresume(result.run_id, step="approve", data={"ok": True})

Engines: ``local`` (in-process, durable through storage) and ``dbos`` (DBOS workers on
PostgreSQL). See docs/workflows.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ResumeDataInvalid",
    "Step",
    "StepContext",
    "StepFailed",
    "StepInterrupted",
    "StepNotSuspended",
    "StepRecord",
    "StepTimeout",
    "SuspendedStep",
    "Worker",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowDefinitionError",
    "WorkflowInputInvalid",
    "WorkflowResult",
    "WorkflowRunExists",
    "WorkflowRunNotFound",
    "WorkflowRunRecord",
    "WorkflowRunStore",
    "WorkflowStream",
    "WorkflowTypeError",
    "recover",
    "step",
]

_LAZY = {
    "Step": ".steps",
    "StepContext": ".steps",
    "step": ".steps",
    "Workflow": ".builder",
    "WorkflowResult": ".result",
    "SuspendedStep": ".result",
    "WorkflowStream": ".engine",
    "StepRecord": ".store",
    "WorkflowRunRecord": ".store",
    "WorkflowRunStore": ".store",
    "Worker": ".worker",
    "recover": ".worker",
    "ResumeDataInvalid": ".errors",
    "StepFailed": ".errors",
    "StepInterrupted": ".errors",
    "StepNotSuspended": ".errors",
    "StepTimeout": ".errors",
    "WorkflowCancelled": ".errors",
    "WorkflowDefinitionError": ".errors",
    "WorkflowInputInvalid": ".errors",
    "WorkflowRunExists": ".errors",
    "WorkflowRunNotFound": ".errors",
    "WorkflowTypeError": ".errors",
}

if TYPE_CHECKING:
    from .builder import Workflow
    from .engine import WorkflowStream
    from .errors import (
        ResumeDataInvalid,
        StepFailed,
        StepInterrupted,
        StepNotSuspended,
        StepTimeout,
        WorkflowCancelled,
        WorkflowDefinitionError,
        WorkflowInputInvalid,
        WorkflowRunExists,
        WorkflowRunNotFound,
        WorkflowTypeError,
    )
    from .result import SuspendedStep, WorkflowResult
    from .steps import Step, StepContext, step
    from .store import StepRecord, WorkflowRunRecord, WorkflowRunStore
    from .worker import Worker, recover


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'vivace.workflows' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
