"""Backend-independent rules shared by every storage backend (serialization, windows, merges)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from ..messages import Message
from .errors import (
    SessionOwnershipError,
    StateNotSerializableError,
    StateTooLargeError,
)
from .records import HistoryWindow, RunRecord

DEFAULT_LEASE = 60.0
"""Seconds a running run stays ``running`` without a heartbeat before it reads as incomplete."""

DEFAULT_MAX_STATE_BYTES = 1_000_000


def _default(o: Any) -> Any:
    dump = getattr(o, "model_dump", None)
    if dump is not None:  # pydantic models (e.g. structured output)
        return dump(mode="json")
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(value: Any, what: str = "value") -> str:
    """Compact JSON text; non-serializable values raise :class:`StateNotSerializableError`."""
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
        )
    except (TypeError, ValueError) as exc:
        raise StateNotSerializableError(
            f"{what} is not JSON-serializable: {exc}", field=what
        ) from None


def dumps_opt(value: Any, what: str = "value") -> str | None:
    return None if value is None else dumps(value, what)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def messages_json(messages: Iterable[Message]) -> str:
    return dumps([m.to_dict() for m in messages], "messages")


def check_owner(session_id: str, owner: str | None, user_id: str | None) -> None:
    """Raise unless ``user_id`` owns the session (None only matches None)."""
    if owner != user_id:
        raise SessionOwnershipError(
            f"session {session_id!r} belongs to another user", session_id=session_id
        )


def effective_status(status: str, lease_expires_at: float | None, now: float | None = None) -> str:
    """A ``running`` run whose lease expired (its process died) reads as ``incomplete``."""
    if (
        status == "running"
        and lease_expires_at is not None
        and lease_expires_at < (time.time() if now is None else now)
    ):
        return "incomplete"
    return status


def merge_state(
    current: Mapping[str, Any],
    changes: Mapping[str, Any] | None,
    deletes: Collection[str],
    max_bytes: int,
    session_id: str,
) -> tuple[dict[str, Any], str]:
    """Apply key-level ``changes``/``deletes`` to ``current``; return the state and its JSON.

    Raises :class:`StateNotSerializableError` or :class:`StateTooLargeError` (nothing applied).
    """
    if changes is not None and not isinstance(changes, Mapping):
        raise StateNotSerializableError("state changes must be a dict", session_id=session_id)
    state = dict(current)
    if changes:
        for k in changes:
            if not isinstance(k, str):
                raise StateNotSerializableError(
                    f"session state keys must be strings, got {type(k).__name__}",
                    session_id=session_id,
                )
        state.update(changes)
    for k in deletes:
        state.pop(k, None)
    text = dumps(state, "session state")
    check_state_size(text, max_bytes, session_id)
    return state, text


def check_state_size(text: str, max_bytes: int, session_id: str) -> None:
    if len(text) * 4 <= max_bytes:  # utf-8 uses at most 4 bytes per character
        return
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise StateTooLargeError(
            f"session state of {session_id!r} would be {size} bytes (limit {max_bytes})",
            session_id=session_id,
            size=size,
            limit=max_bytes,
        )


def window_messages(
    runs_newest_first: Sequence[list[Message]], window: HistoryWindow
) -> tuple[list[Message], int]:
    """Apply ``window`` to the messages of runs given newest first.

    Returns the messages oldest first and how many of the newest runs contributed to them.
    """
    runs = list(runs_newest_first)
    if window.last_runs is not None:
        runs = runs[: window.last_runs]
    runs.reverse()
    msgs = [m for r in runs for m in r]
    total = len(msgs)
    if window.last_messages is not None and len(msgs) > window.last_messages:
        msgs = msgs[len(msgs) - window.last_messages :] if window.last_messages else []
    if window.max_tokens is not None:
        budget = window.max_tokens
        kept = 0
        for m in reversed(msgs):
            cost = estimate_tokens(m)
            if cost > budget:
                break
            budget -= cost
            kept += 1
        msgs = msgs[len(msgs) - kept :] if kept else []
    # never start with a tool result / assistant turn cut from its user message
    start = 0
    while start < len(msgs) and msgs[start].role != "user":
        start += 1
    if start:
        msgs = msgs[start:]
    # the window reaches back to the oldest run that still has a message in it: count the
    # runs from there to the newest (a run without messages inside that range counts too)
    skipped = total - len(msgs)
    for i, r in enumerate(runs):  # oldest first
        if skipped < len(r):
            return msgs, len(runs) - i
        skipped -= len(r)
    return msgs, 0


def estimate_tokens(message: Message) -> int:
    """A cheap token estimate: ~4 characters of the message's JSON per token."""
    return max(1, len(json.dumps(message.to_dict(), ensure_ascii=False)) // 4)


def run_row(record: RunRecord) -> dict[str, Any]:
    """The JSON columns of a run record (raises StateNotSerializableError)."""
    return {
        "run_id": record.run_id,
        "session_id": record.session_id,
        "agent_id": record.agent_id,
        "user_id": record.user_id,
        "status": record.status,
        "input": dumps_opt(record.input, "run input"),
        "messages": messages_json(record.messages),
        "output": dumps_opt(record.output, "run output"),
        "usage": dumps_opt(record.usage.to_dict() if record.usage is not None else None, "usage"),
        "error": dumps_opt(record.error, "run error"),
        "paused": dumps_opt(record.paused, "paused state"),
        "metadata": dumps(record.metadata or {}, "run metadata"),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "lease_expires_at": record.lease_expires_at,
    }


def run_from_row(row: Any, now: float | None = None) -> RunRecord:
    from ..models.base import Usage

    usage = loads(row["usage"])
    return RunRecord(
        run_id=row["run_id"],
        session_id=row["session_id"],
        agent_id=row["agent_id"],
        user_id=row["user_id"],
        status=effective_status(row["status"], row["lease_expires_at"], now),  # type: ignore[arg-type]
        input=loads(row["input"]),
        messages=[Message.from_dict(m) for m in json.loads(row["messages"] or "[]")],
        output=loads(row["output"]),
        usage=Usage.from_dict(usage) if usage is not None else Usage(),
        error=loads(row["error"]),
        paused=loads(row["paused"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata=loads(row["metadata"]) or {},
        lease_expires_at=row["lease_expires_at"],
    )


def parse_messages(text: str | None) -> list[Message]:
    return [Message.from_dict(m) for m in json.loads(text or "[]")]


def event_rows(
    run_id: str, events: Iterable[Mapping[str, Any]], now: float
) -> list[dict[str, Any]]:
    """Rows of ``vivace_run_events`` for ``events`` (each needs an integer ``seq``)."""
    rows = []
    for e in events:
        seq = e.get("seq")
        if type(seq) is not int or seq < 0:
            from ..errors import UserError

            raise UserError(f"a run event needs an integer seq >= 0, got {seq!r}")
        rows.append(
            {"run_id": run_id, "seq": seq, "event": dumps(e, "run event"), "created_at": now}
        )
    return rows
