"""Typed storage errors (all derive from :class:`~vivace.errors.StorageError` or ``UserError``)."""

from __future__ import annotations

from ..errors import NotFound, StorageError, UserError

__all__ = [
    "CorruptDatabaseError",
    "NotFound",
    "RunStateError",
    "SchemaMissingError",
    "SchemaVersionError",
    "SessionOwnershipError",
    "StateConflict",
    "StateNotSerializableError",
    "StateTooLargeError",
    "StateUpdateError",
    "StorageError",
]


class SchemaVersionError(StorageError):
    """The database schema is newer than this code (or upgrades are disabled). Nothing changed."""

    code = "schema_version_error"


class SchemaMissingError(StorageError):
    """The Vivace tables do not exist and ``create_tables`` is off."""

    code = "schema_missing"


class CorruptDatabaseError(StorageError):
    """The file or database is not a Vivace database (corrupt, half-made, or another
    program's). Nothing changed."""

    code = "corrupt_database"


class SessionOwnershipError(UserError):
    """The session belongs to another user; its data is never returned or changed."""

    code = "session_ownership_error"


class StateTooLargeError(UserError):
    """The session state would exceed the configured size limit. Nothing changed."""

    code = "state_too_large"


class StateNotSerializableError(UserError):
    """A value to store is not JSON-serializable (state, output, metadata...). Nothing changed."""

    code = "state_not_serializable"


class StateConflict(UserError):
    """Another run changed session-state keys this run also changed, after this run read
    them (``details["keys"]``). Nothing of this run's state was written: run it again, or
    change the keys with the atomic updates of
    :class:`~vivace.storage.SessionState` (``increment``, ``append``, ``merge``)."""

    code = "state_conflict"
    retryable = True


class StateUpdateError(UserError):
    """An atomic session-state update does not fit the value it updates (incrementing text,
    appending to a number). Nothing changed."""

    code = "state_update_error"


class RunStateError(UserError):
    """The run is not in a state that allows this (e.g. resuming a run that is not paused)."""

    code = "run_state_error"
