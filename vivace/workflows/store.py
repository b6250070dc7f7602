"""The workflow storage domain, as the engine sees it.

The interface and records live in :mod:`vivace.storage` (``storage.workflows``, every
backend implements it): :class:`~vivace.storage.WorkflowStore` (one row per run, one row per
executed step), :class:`~vivace.storage.WorkflowRunRecord`, :class:`~vivace.storage.StepRecord`
and :class:`~vivace.storage.ResumeOutcome`. This module re-exports them under the engine's
names.
"""

from __future__ import annotations

from ..storage.base import WorkflowStore
from ..storage.records import (
    WORKFLOW_FINAL,
    WORKFLOW_PARKED,
    WORKFLOW_STATUSES,
    ResumeOutcome,
    StepRecord,
    WorkflowRunRecord,
)

__all__ = [
    "FINAL_STATUSES",
    "PARKED_STATUSES",
    "STATUSES",
    "ResumeOutcome",
    "StepRecord",
    "WorkflowRunRecord",
    "WorkflowRunStore",
]

WorkflowRunStore = WorkflowStore
"""The workflow domain's interface (``storage.workflows``)."""
FINAL_STATUSES = WORKFLOW_FINAL
PARKED_STATUSES = WORKFLOW_PARKED
STATUSES = WORKFLOW_STATUSES
