"""Session state as a run sees it, and what a run's changes do to the stored state.

:class:`SessionState` is the run's ``session_state``: a dict that remembers what each key held
when the run read it and records atomic updates (``increment``, ``append``, ``merge``).
:meth:`SessionState.delta` turns it into a :class:`StateDelta`, which ``finish_run`` applies to
the *current* stored state under the session's row lock:

- a key the run set or deleted is written only if nobody changed it since the run read it
  (else :class:`~vivace.storage.StateConflict`, nothing written);
- an atomic update is applied to the stored value, whatever other runs did meanwhile, so
  concurrent updates never lose a write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._json import canon
from .errors import StateConflict, StateNotSerializableError, StateUpdateError

__all__ = ["SessionState", "StateDelta"]

_MISSING: Any = object()
Op = tuple[str, str, Any]
"""An atomic update: (``"increment"`` | ``"append"`` | ``"merge"``, key, argument)."""


def _canon_or_none(value: Any) -> str | None:
    try:
        return canon(value)
    except (TypeError, ValueError):
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _apply(op: str, key: str, current: Any, arg: Any) -> Any:
    """The value of ``key`` after ``op`` (never changes ``current`` in place)."""
    if op == "increment":
        if current is _MISSING:
            current = 0
        if not _is_number(current):
            raise StateUpdateError(
                f"cannot increment {key!r}: it holds {type(current).__name__}, not a number",
                key=key,
            )
        return current + arg
    if op == "append":
        if current is _MISSING:
            return list(arg)
        if not isinstance(current, list):
            raise StateUpdateError(
                f"cannot append to {key!r}: it holds {type(current).__name__}, not a list",
                key=key,
            )
        return [*current, *arg]
    if current is _MISSING:
        return dict(arg)
    if not isinstance(current, dict):
        raise StateUpdateError(
            f"cannot merge into {key!r}: it holds {type(current).__name__}, not a dict", key=key
        )
    return {**current, **arg}


@dataclass(slots=True)
class StateDelta:
    """A run's changes to its session state, as ``finish_run`` applies them.

    ``changes``/``deletes`` are the keys the run set (with their values) and deleted.
    ``expected`` holds, for those keys, the canonical JSON of the value as the run read it
    (None: the key was absent); ``expected=None`` writes them blindly (no conflict check).
    ``ops`` are atomic updates applied to the stored values, in order.
    """

    changes: dict[str, Any] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    expected: dict[str, str | None] | None = None
    ops: list[Op] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes or self.deletes or self.ops)

    def apply(self, current: Mapping[str, Any], session_id: str) -> dict[str, Any]:
        """The state after this delta on ``current`` (the stored state, read under the lock).

        Raises :class:`StateConflict` (a key changed since the run read it, or an atomic
        update no longer fits the stored value) or :class:`StateNotSerializableError`.
        """
        for k in self.changes:
            if not isinstance(k, str):
                raise StateNotSerializableError(
                    f"session state keys must be strings, got {type(k).__name__}",
                    session_id=session_id,
                )
        if self.expected:
            conflicts = [k for k, old in self.expected.items() if not self._fits(current, k, old)]
            if conflicts:
                raise StateConflict(
                    f"session state of {session_id!r}: {sorted(conflicts)} changed since this "
                    "run read them; run again, or change them with increment/append/merge",
                    session_id=session_id,
                    keys=sorted(conflicts),
                )
        state = dict(current)
        state.update(self.changes)
        for k in self.deletes:
            state.pop(k, None)
        for op, key, arg in self.ops:
            try:
                state[key] = _apply(op, key, state.get(key, _MISSING), arg)
            except StateUpdateError as exc:
                raise StateConflict(
                    f"session state of {session_id!r}: {exc.message} (another run changed it)",
                    session_id=session_id,
                    keys=[key],
                ) from None
        return state

    def _fits(self, current: Mapping[str, Any], key: str, old: str | None) -> bool:
        """Whether writing ``key`` loses nothing: it is still as the run read it (or the run
        deletes it and it is gone already). A value another run wrote meanwhile conflicts
        even when it equals this run's value: both may have computed it from the same
        read (two increments from 0 to 1)."""
        present = key in current
        if key not in self.changes and not present:
            return True
        stored = _canon_or_none(current[key]) if present else None
        return stored == old


class SessionState(dict[str, Any]):
    """A run's session state: a dict, plus atomic updates that never lose a write.

    Plain changes (``state["k"] = v``, ``del state["k"]``, changes inside a value) are written
    when the run finishes, unless another run changed the same key since this run read it:
    then the run fails with :class:`~vivace.storage.StateConflict` (retry it). The updates
    :meth:`increment`, :meth:`append` and :meth:`merge` apply here at once and are applied
    again to the value stored when the run finishes, so concurrent runs all count.
    """

    __slots__ = ("_after", "_assigned", "_base", "_ops")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(data or {})
        try:
            base = {k: canon(v) for k, v in self.items()}
        except (TypeError, ValueError) as exc:
            raise StateNotSerializableError(f"session state is not JSON: {exc}") from None
        self._base: dict[str, str] = base
        self._assigned: set[str] | None = None
        self._ops: list[Op] | None = None
        self._after: dict[str, str | None] | None = None

    @classmethod
    def loaded(cls, data: dict[str, Any], baseline: dict[str, str]) -> SessionState:
        """A state read from storage: ``data`` (the run's own copy) with ``baseline``, the
        canonical JSON of each key as stored."""
        self = cls.__new__(cls)
        dict.update(self, data)
        self._base = baseline
        self._assigned = None
        self._ops = None
        self._after = None
        return self

    def __reduce__(self) -> Any:
        return (_restore, (dict(self), self._base, self._assigned, self._ops, self._after))

    # -- plain dict changes: tracked per key --------------------------------------------------

    def _touch(self, key: str) -> None:
        if self._assigned is None:
            self._assigned = set()
        self._assigned.add(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._touch(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._touch(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._touch(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._touch(item[0])
        return item

    def clear(self) -> None:
        for k in self:
            self._touch(k)
        super().clear()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._touch(key)
        return super().setdefault(key, default)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items = dict(other, **kwargs)
        for k in items:
            self._touch(k)
        super().update(items)

    def __ior__(self, other: Any) -> SessionState:  # type: ignore[override,misc]
        self.update(other)
        return self

    # -- atomic updates -------------------------------------------------------------------------

    def increment(self, key: str, by: int | float = 1) -> Any:
        """Add ``by`` to the number at ``key`` (0 when missing); returns the new value here.

        When the run finishes, ``by`` is added to the value stored *then*: concurrent
        increments all count."""
        if not _is_number(by):
            raise StateUpdateError(f"increment by a number, not {type(by).__name__}", key=key)
        return self._update("increment", key, by)

    def append(self, key: str, *values: Any) -> list[Any]:
        """Append ``values`` to the list at ``key`` (a new list when missing); returns it.

        When the run finishes, ``values`` are appended to the list stored *then*."""
        return self._update("append", key, list(values))

    def merge(self, key: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Set ``values``' keys in the dict at ``key`` (a new dict when missing); returns it.

        When the run finishes, ``values`` are merged into the dict stored *then* (keys the
        run did not name keep what other runs wrote)."""
        if not isinstance(values, Mapping):
            raise StateUpdateError(f"merge a mapping, not {type(values).__name__}", key=key)
        return self._update("merge", key, dict(values))

    def _update(self, op: str, key: str, arg: Any) -> Any:
        if not isinstance(key, str):
            raise StateUpdateError(f"session state keys are strings, not {type(key).__name__}")
        current = dict.get(self, key, _MISSING)
        new = _apply(op, key, current, arg)
        tracked = self._tracked(key, current)
        if op == "increment" or current is _MISSING:
            dict.__setitem__(self, key, new)
        elif op == "append":
            current.extend(arg)  # in place: whoever holds the list sees the values
            new = current
        else:
            current.update(arg)
            new = current
        if tracked:
            after = _canon_or_none(new)
            if after is None:  # not JSON: a plain write, which finish_run refuses
                self._touch(key)
            else:
                if self._ops is None:
                    self._ops, self._after = [], {}
                self._ops.append((op, key, arg))
                assert self._after is not None
                self._after[key] = after
        return new

    def _tracked(self, key: str, current: Any) -> bool:
        """Whether an update of ``key`` can be applied to the stored value: the key was not
        assigned, and holds what the run read or its earlier updates made of it."""
        if self._assigned is not None and key in self._assigned:
            return False
        after = self._after
        expected = after[key] if after is not None and key in after else self._base.get(key)
        actual = None if current is _MISSING else _canon_or_none(current)
        if actual is None and current is not _MISSING:
            actual = "\x00not json"
        if actual != expected:
            self._touch(key)  # changed in place: the whole value is a plain write
            return False
        return True

    # -- what the run did ---------------------------------------------------------------------------

    def delta(self, state: Mapping[str, Any] | None = None) -> StateDelta:
        """This run's changes: keys set or deleted (checked for conflicts when written) and
        atomic updates. ``state``: a replacement for this state (default: this state)."""
        current: Mapping[str, Any] = self if state is None else state
        base = self._base
        atomic = self._atomic_keys() if state is None else set()
        changes: dict[str, Any] = {}
        expected: dict[str, str | None] = {}
        for k, v in current.items():
            if k in atomic:
                continue
            old = base.get(k)
            if old is not None and _canon_or_none(v) == old:
                continue
            changes[k] = v
            expected[k] = old
        deletes = [k for k in base if k not in current]
        for k in deletes:
            expected[k] = base[k]
        ops = [o for o in self._ops if o[1] in atomic] if atomic and self._ops else []
        return StateDelta(changes, deletes, expected, ops)

    def changes(self, state: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """The top-level keys set (with their values, atomic updates included) and deleted,
        compared with the state as read."""
        current: Mapping[str, Any] = self if state is None else state
        base = self._base
        changed = {
            k: v for k, v in current.items() if base.get(k) is None or _canon_or_none(v) != base[k]
        }
        return changed, [k for k in base if k not in current]

    def _atomic_keys(self) -> set[str]:
        after = self._after
        if not after:
            return set()
        assigned = self._assigned or ()
        return {
            k
            for k, snap in after.items()
            if k not in assigned and k in self and _canon_or_none(dict.get(self, k)) == snap
        }


def _restore(
    data: dict[str, Any],
    base: dict[str, str],
    assigned: Iterable[str] | None,
    ops: list[Op] | None,
    after: dict[str, str | None] | None,
) -> SessionState:
    state = SessionState.loaded(data, base)
    state._assigned = set(assigned) if assigned is not None else None
    state._ops = list(ops) if ops is not None else None
    state._after = dict(after) if after is not None else None
    return state
