"""The one ownership rule: who may act on a session or run owned by a user id."""

from __future__ import annotations

from .errors import SessionOwnershipError

__all__ = ["check_session_owner", "may_act"]


def may_act(owner: str | None, user_id: str | None) -> bool:
    """Whether ``user_id`` may act on a record owned by ``owner``: only the same user id.

    A record without an owner (None) belongs to nobody in particular and is only for callers
    without a user id; ``user_id=None`` never acts on a user's record."""
    return owner == user_id


def check_session_owner(session_id: str, owner: str | None, user_id: str | None) -> None:
    """Raise :class:`SessionOwnershipError` unless :func:`may_act`."""
    if owner != user_id:
        raise SessionOwnershipError(
            f"session {session_id!r} belongs to another user", session_id=session_id
        )
