"""Typed errors raised by Vivace.

Every error a user can see derives from :class:`VivaceError`, so ``except VivaceError``
catches all of them. Errors carry structured fields (never secrets) and serialize to a
plain dict for events, the server and traces.
"""

from __future__ import annotations

from typing import Any


class VivaceError(Exception):
    """Base class of every Vivace error."""

    code: str = "vivace_error"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable description: type, code, message and details."""
        out: dict[str, Any] = {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
        }
        if self.details:
            out["details"] = self.details
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.details))

    @staticmethod
    def from_dict(data: dict[str, Any]) -> VivaceError:
        """The error a :meth:`to_dict` described (stored with a run, say), as the class
        with its ``code`` when one is loaded in this process, else a :class:`VivaceError`
        that keeps the code."""
        code = data.get("code")
        message = str(data.get("message") or "")
        given = data.get("details")
        details: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        found = _with_code(VivaceError, code) if isinstance(code, str) else None
        if found is None:
            err = VivaceError(message, **details)
            if isinstance(code, str):
                err.code = code
            return err
        try:  # its own constructor sets its attributes (``step``, ``field``...)
            return found(message, **details)
        except TypeError:  # details its constructor does not take: the fields alone
            return _rebuild(found, message, details)


def _with_code(cls: type[VivaceError], code: str) -> type[VivaceError] | None:
    """The first subclass of ``cls`` (depth first) that declares ``code`` itself."""
    for sub in cls.__subclasses__():
        if sub.__dict__.get("code") == code:
            return sub
        deeper = _with_code(sub, code)
        if deeper is not None:
            return deeper
    return None


def _rebuild(cls: type[VivaceError], message: str, details: dict[str, Any]) -> VivaceError:
    err = cls.__new__(cls)
    VivaceError.__init__(err, message, **details)
    return err


# -- definitions (raised at first use) ------------------------------------------------------


class UserError(VivaceError):
    """The program using Vivace made a mistake (a bad definition or argument)."""

    code = "user_error"


class InvalidIdentifier(UserError):
    """An id or name (session, user, run, agent...) has characters Vivace does not accept:
    control characters (``\\x00``-``\\x1f``, ``\\x7f``-``\\x9f``), unpaired surrogates, or
    it is empty or too long. ``field`` names the offending field. Nothing was changed."""

    code = "invalid_identifier"

    def __init__(self, message: str, *, field: str, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class ToolDefinitionError(UserError):
    """A tool cannot be turned into a schema (e.g. an unsupported parameter type)."""

    code = "tool_definition_error"


class OutputTypeError(UserError):
    """``output_type`` is not something Vivace can validate against."""

    code = "output_type_error"


class ModelNotFoundError(UserError):
    """A model string names no known provider, or no model was given."""

    code = "model_not_found"


class ModelConfigError(UserError):
    """A provider is known but not usable as configured (e.g. a missing API key)."""

    code = "model_config_error"


# -- run outcomes ----------------------------------------------------------------------------


class RunError(VivaceError):
    """A run ended without an output."""

    code = "run_error"


class MaxStepsExceeded(RunError):
    """The run used up ``max_steps`` model requests without a final answer."""

    code = "max_steps_exceeded"


class UnexpectedModelBehavior(RunError):
    """The model kept answering in a way the run cannot use (after its retries)."""

    code = "unexpected_model_behavior"


class OutputValidationError(UnexpectedModelBehavior):
    """The model's structured output stayed invalid after the output retries."""

    code = "output_validation_error"


class ToolRetriesExceeded(UnexpectedModelBehavior):
    """A tool kept failing (bad arguments, exceptions, timeouts) beyond its retry budget."""

    code = "tool_retries_exceeded"


class ModelRefusal(RunError):
    """The model refused to answer or its answer was filtered."""

    code = "model_refusal"


class GuardrailTripped(RunError):
    """A hook or guardrail blocked the run; ``reason`` says why."""

    code = "guardrail_tripped"

    def __init__(self, reason: str = "blocked by guardrail", **details: Any) -> None:
        super().__init__(reason, **details)
        self.reason = reason


class UnexpectedError(RunError):
    """Code the run called (a model, a hook, a capability, an instructions callable) raised an
    exception that is not a :class:`VivaceError`. The run is stored as failed with this error;
    the original exception is its ``__cause__`` and its type is in ``details``."""

    code = "unexpected_error"

    @classmethod
    def wrap(cls, exc: BaseException) -> UnexpectedError:
        kind = type(exc)
        err = cls(
            f"{kind.__name__}: {exc}", exception_type=f"{kind.__module__}.{kind.__qualname__}"
        )
        err.__cause__ = exc
        return err


class RunCancelled(RunError):
    """The run was cancelled."""

    code = "run_cancelled"


class RunNotFound(UserError):
    """No run (or paused run) with this id is known."""

    code = "run_not_found"


class WorkflowRunNotFound(UserError):
    """No workflow run with this id is known (to this storage, or this process)."""

    code = "workflow_run_not_found"


class StepNotSuspended(UserError):
    """A workflow resume named a step that is not waiting for data: never suspended, already
    resumed (by this or another process), or the run is not suspended. ``step`` names it and
    ``status`` is the run's status."""

    code = "step_not_suspended"

    def __init__(self, message: str, *, run_id: str, step: str, status: str | None) -> None:
        super().__init__(message, run_id=run_id, step=step, status=status)
        self.run_id = run_id
        self.step = step
        self.status = status


class ResumeError(UserError):
    """``resume`` was called with approvals that do not match the paused run."""

    code = "resume_error"


# -- model / provider errors -----------------------------------------------------------------


class ModelError(VivaceError):
    """A model request failed. ``provider``, ``status`` and ``body`` say where and how."""

    code = "model_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        body: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message, provider=provider, model=model, status=status, body=body, **details
        )
        self.provider = provider
        self.model = model
        self.status = status
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after


class ModelHTTPError(ModelError):
    """The provider answered with an HTTP error status."""

    code = "model_http_error"


class ModelRateLimited(ModelHTTPError):
    """The provider answered 429 (rate limited)."""

    code = "model_rate_limited"


class ModelConnectionError(ModelError):
    """The provider could not be reached, or the connection broke."""

    code = "model_connection_error"


class ModelTimeout(ModelConnectionError):
    """The provider did not answer in time."""

    code = "model_timeout"


class ModelResponseError(ModelError):
    """The provider answered with something that is not the documented protocol."""

    code = "model_response_error"


class StreamInterrupted(ModelError):
    """A streamed answer broke off before the provider said it was complete."""

    code = "stream_interrupted"


class AllModelsFailed(ModelError):
    """Every model of a fallback list failed; ``errors`` holds each failure."""

    code = "all_models_failed"

    def __init__(self, message: str, errors: list[VivaceError]) -> None:
        super().__init__(message, errors=[e.to_dict() for e in errors])
        self.errors = errors


# -- storage errors --------------------------------------------------------------------------


class StorageError(VivaceError):
    """The storage backend failed (never reported as "not found")."""

    code = "storage_error"


class NotFound(VivaceError):
    """A session, run or other record does not exist."""

    code = "not_found"
