"""Run ids: random, 32 hex digits, laid out as a UUID4 (the trace id of a new trace)."""

from __future__ import annotations

import uuid

from vivace import Agent
from vivace.testing import EchoModel


def test_run_ids_are_uuid4_hex_and_unique() -> None:
    agent = Agent(model=EchoModel())
    ids = {agent.run("hi").run_id for _ in range(200)}
    assert len(ids) == 200
    for run_id in ids:
        u = uuid.UUID(run_id)
        assert u.hex == run_id and u.version == 4 and u.variant == uuid.RFC_4122
