"""Backend-independent rules every storage backend shares: ids, rows, windows, state merges."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from ..errors import UserError
from ..identifiers import check_identifier
from ..messages import Message
from ._json import dumps, dumps_opt, loads, text_out
from .errors import StateNotSerializableError, StateTooLargeError
from .records import HistoryWindow, RunRecord, SessionRecord
from .state import SessionState, StateDelta

DEFAULT_LEASE = 60.0
"""Seconds a running run stays ``running`` without a heartbeat before it reads as incomplete."""

DEFAULT_MAX_STATE_BYTES = 1_000_000

CANCEL_KEY = "cancel_requested_at"
"""The key :meth:`SessionStore.request_cancel` sets in a running run's ``metadata``."""

SCOPES = ("session", "user", "summary")


# -- options -------------------------------------------------------------------------------------


def check_lease(value: Any, what: str = "run_lease") -> float:
    """A lease in seconds: a finite number > 0 (raises UserError)."""
    try:
        lease = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number of seconds, not {value!r}") from None
    if not (lease > 0 and math.isfinite(lease)):
        raise UserError(f"{what} must be more than 0 seconds, not {value!r}")
    return lease


# -- ids -----------------------------------------------------------------------------------------


def check_id(field: str, value: Any) -> str:
    """An id the storage receives (the one rule: :func:`vivace.identifiers.check_identifier`)."""
    return check_identifier(field, value)


def check_opt_id(field: str, value: Any) -> str | None:
    return None if value is None else check_identifier(field, value)


def check_ids(field: str, values: Iterable[Any]) -> list[str]:
    return [check_identifier(field, v) for v in values]


def check_run_ids(record: RunRecord) -> None:
    check_identifier("run_id", record.run_id)
    check_identifier("session_id", record.session_id)
    if record.user_id is not None:
        check_identifier("user_id", record.user_id)
    if record.agent_id is not None:
        check_identifier("agent_id", record.agent_id)
    if record.parent_run_id is not None:
        check_identifier("parent_run_id", record.parent_run_id)
    if record.trace_id is not None:
        check_identifier("trace_id", record.trace_id)
    if record.span_id is not None:
        check_identifier("span_id", record.span_id)


def check_span_ids(span: Any) -> None:
    """The ids of a :class:`~vivace.storage.SpanRecord`."""
    check_identifier("span_id", span.span_id)
    check_identifier("trace_id", span.trace_id)
    for field in ("parent_id", "run_id", "session_id"):
        value = getattr(span, field)
        if value is not None:
            check_identifier(field, value)


def check_scope(scope: Any) -> str:
    if scope not in SCOPES:
        raise UserError(f"working memory scope must be one of {SCOPES}, not {scope!r}")
    return str(scope)


# -- runs and sessions as rows -------------------------------------------------------------------


def messages_json(messages: Iterable[Message]) -> str:
    return dumps([m.to_dict() for m in messages], "messages")


def parse_messages(text: str | None) -> list[Message]:
    return [Message.from_dict(m) for m in json.loads(text or "[]")]


def effective_status(status: str, lease_expires_at: float | None, now: float | None = None) -> str:
    """A ``running`` run whose lease expired (its process died) reads as ``incomplete``."""
    if (
        status == "running"
        and lease_expires_at is not None
        and lease_expires_at < (time.time() if now is None else now)
    ):
        return "incomplete"
    return status


def run_row(record: RunRecord) -> dict[str, Any]:
    """The columns of a run record (checks its ids; raises StateNotSerializableError)."""
    check_run_ids(record)
    return {
        "run_id": record.run_id,
        "session_id": record.session_id,
        "agent_id": record.agent_id,
        "user_id": record.user_id,
        "status": record.status,
        "input": dumps_opt(record.input, "run input"),
        "messages": messages_json(record.messages),
        "output": dumps_opt(record.output, "run output"),
        "usage": dumps_opt(record.usage, "usage"),
        "error": dumps_opt(record.error, "run error"),
        "paused": dumps_opt(record.paused, "paused state"),
        "metadata": dumps(record.metadata or {}, "run metadata"),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "lease_expires_at": record.lease_expires_at,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "parent_run_id": record.parent_run_id,
    }


def run_from_row(row: Any, now: float | None = None) -> RunRecord:
    """A run record from its columns (any mapping: a SQL row, an asyncpg record, a dict)."""
    return RunRecord(
        run_id=row["run_id"],
        session_id=row["session_id"],
        agent_id=row["agent_id"],
        user_id=row["user_id"],
        status=effective_status(row["status"], row["lease_expires_at"], now),  # type: ignore[arg-type]
        input=loads(row["input"]),
        messages=parse_messages(row["messages"]),
        output=loads(row["output"]),
        usage=loads(row["usage"]),
        error=loads(row["error"]),
        paused=loads(row["paused"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata=loads(row["metadata"]) or {},
        lease_expires_at=row["lease_expires_at"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_run_id=row["parent_run_id"],
    )


def _object(text: str) -> Any:
    return {} if text == "{}" else json.loads(text)  # most sessions' state and metadata


def session_from_row(row: Any) -> SessionRecord:
    """A session record from its columns (any mapping). The one reader of session rows."""
    return SessionRecord(
        session_id=row["session_id"],
        agent_id=row["agent_id"],
        user_id=row["user_id"],
        name=text_out(row["name"]),
        state=_object(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata=_object(row["metadata"]),
    )


def cancel_flagged(metadata_json: str | None) -> bool:
    """Whether a run's stored ``metadata`` JSON text holds a cancellation request."""
    if not metadata_json or CANCEL_KEY not in metadata_json:
        return False
    try:
        meta = json.loads(metadata_json)
    except ValueError:
        return False
    return isinstance(meta, dict) and meta.get(CANCEL_KEY) is not None


# -- state ---------------------------------------------------------------------------------------


def state_delta(
    state: StateDelta | SessionState | None,
    changes: Mapping[str, Any] | None,
    deletes: Collection[str],
) -> StateDelta:
    """The delta ``finish_run`` applies: ``state`` (a run's :class:`SessionState` or a
    :class:`StateDelta`), or blind ``changes``/``deletes``. Checks that values are JSON."""
    if state is not None:
        if changes or deletes:
            raise UserError("pass state=... or state_changes/state_deletes, not both")
        delta = state.delta() if isinstance(state, SessionState) else state
        if not isinstance(delta, StateDelta):
            raise UserError(f"state must be a SessionState or StateDelta, not {type(state)}")
    else:
        if changes is not None and not isinstance(changes, Mapping):
            raise StateNotSerializableError("state changes must be a dict")
        delta = StateDelta(dict(changes or {}), list(deletes))
    if delta.changes:
        dumps(delta.changes, "session state")  # fail before any transaction
    if delta.ops:
        dumps([arg for _, _, arg in delta.ops], "session state")
    return delta


def merge_state(
    current: Mapping[str, Any], delta: StateDelta, max_bytes: int, session_id: str
) -> tuple[dict[str, Any], str]:
    """Apply ``delta`` to the stored ``current`` state; return the state and its JSON.

    Raises StateConflict, StateNotSerializableError or StateTooLargeError (nothing applied).
    """
    state = delta.apply(current, session_id)
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


# -- history windows -----------------------------------------------------------------------------


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


# -- run events ----------------------------------------------------------------------------------


def event_rows(
    run_id: str, events: Iterable[Mapping[str, Any]], now: float
) -> list[dict[str, Any]]:
    """Rows of ``vivace_run_events`` for ``events`` (each needs an integer ``seq``)."""
    check_identifier("run_id", run_id)
    rows = []
    for e in events:
        seq = e.get("seq")
        if type(seq) is not int or seq < 0:
            raise UserError(f"a run event needs an integer seq >= 0, got {seq!r}")
        rows.append(
            {"run_id": run_id, "seq": seq, "event": dumps(e, "run event"), "created_at": now}
        )
    return rows
