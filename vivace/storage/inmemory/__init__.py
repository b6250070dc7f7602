"""In-memory storage for tests and throwaway agents (one process, nothing persisted).

Records are kept as JSON text, like the SQL backends, so the same rules apply: every value
must be JSON-serializable and reads never alias what the caller holds. One module per
domain: ``sessions``, ``memory``, ``workflows``, ``traces``, ``scores``, ``events``.
"""

from __future__ import annotations

from .. import _logic as L
from ..base import Storage
from .events import MemoryEvents
from .memory import MemoryMemory
from .scores import MemoryScores
from .sessions import MemorySessions
from .traces import MemoryTraces
from .workflows import MemoryWorkflows

__all__ = ["InMemoryStorage"]


class InMemoryStorage(Storage):
    """Every domain in this process's memory. Not shared between processes; lost on exit.

    ``run_lease``: seconds a running run stays ``running`` without a heartbeat.
    """

    def __init__(
        self,
        *,
        max_state_bytes: int = L.DEFAULT_MAX_STATE_BYTES,
        run_lease: float = L.DEFAULT_LEASE,
    ) -> None:
        self.memory = memory = MemoryMemory()
        self.sessions = MemorySessions(
            max_state_bytes=max_state_bytes,
            run_lease=L.check_lease(run_lease),
            delete_session_data=memory.delete_session_data,
        )
        self.workflows = MemoryWorkflows()
        self.traces = MemoryTraces()
        self.scores = MemoryScores()
        self.events = MemoryEvents()

    @property
    def max_state_bytes(self) -> int:
        return self.sessions.max_state_bytes

    def __repr__(self) -> str:
        return "InMemoryStorage()"
