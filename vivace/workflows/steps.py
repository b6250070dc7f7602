"""Steps: typed units of work, and the context a running step receives.

A step is a sync or async function with one input and one output, declared with
:func:`step` (or built from an agent, a tool or another workflow with :meth:`Step.of`)::

    @step
    def double(n: int) -> int:
        return n * 2

    @step(retries=3, backoff=0.5, timeout=30, resume=Approval)
    async def approve(order: Order, ctx: StepContext) -> Order:
        decision = await ctx.suspend({"order": order.id})   # the data a human sends back
        ...

Nothing is inspected when a step is declared: its types are read once, when a workflow
that uses it is built.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .errors import WorkflowDefinitionError
from .typecheck import UNKNOWN, type_name

if TYPE_CHECKING:
    from .builder import Workflow
    from .engine import Execution

__all__ = ["Step", "StepContext", "step"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")

# how a step function is called (decided once, when its types are read)
_CALL_NONE, _CALL_IN, _CALL_IN_CTX, _CALL_CTX, _CALL_CTX_IN = range(5)


class _Suspend(BaseException):
    """Raised by :meth:`StepContext.suspend` to park the step."""

    __slots__ = ("event", "kind", "payload")

    def __init__(self, payload: Any, kind: str = "suspend", event: str | None = None) -> None:
        self.payload = payload
        self.kind = kind
        self.event = event


class _Bail(BaseException):
    """Raised by :meth:`StepContext.bail`: end the run successfully with ``output``."""

    __slots__ = ("output",)

    def __init__(self, output: Any) -> None:
        self.output = output


class _Cancel(BaseException):
    """Raised by :meth:`StepContext.cancel`: end the run as cancelled."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Ready:
    """An awaitable that is already done (what ``suspend`` returns once resumed)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> typing.Generator[Any, None, Any]:
        return self.value
        yield  # pragma: no cover - makes this a generator


class StepContext(Generic[OutT]):
    """What a running step knows: its run, its path, the shared state, and the controls.

    ``state`` is the workflow's shared state (the instance of the workflow's ``state`` type,
    or a dict); changes are persisted with the step. ``resume_data`` is the data the step was
    resumed with (None on its first execution). ``attempt`` counts from 1.
    """

    __slots__ = ("_exec", "_resume_list", "_suspends", "attempt", "path", "resume_data", "step")

    def __init__(
        self, execution: Execution, step: Step[Any, Any], path: str, resume: list[Any] | None
    ) -> None:
        self._exec = execution
        self.step = step
        self.path = path
        self.attempt = 1
        self._suspends = 0
        self.resume_data = None
        if resume:
            from .typecheck import from_json

            rt = step.resume_type
            self.resume_data = resume[-1] if rt is None else from_json(rt, resume[-1])
        self._resume_list = resume

    @property
    def run_id(self) -> str:
        return self._exec.run_id

    @property
    def workflow(self) -> str:
        return self._exec.workflow.id

    @property
    def state(self) -> Any:
        """The run's shared state (read and update it; it is persisted with the step)."""
        return self._exec.state

    @property
    def trace_id(self) -> str | None:
        return self._exec.trace_id

    @property
    def span_id(self) -> str | None:
        return self._exec.span_id

    @property
    def deps(self) -> Any:
        """Dependencies given to the run (``wf.run(..., deps=...)``)."""
        return self._exec.deps

    def suspend(self, payload: Any = None) -> Awaitable[Any]:
        """Park this step until :meth:`Workflow.resume` sends data: ``await ctx.suspend(p)``.

        The run is persisted as suspended (with this step's path and ``payload``). When the
        step runs again after a resume, the same call returns the resume data (validated
        against the step's ``resume`` type) instead of suspending. A step may suspend several
        times; each call waits for its own resume.
        """
        k = self._suspends
        self._suspends = k + 1
        resumes = self._resume_list
        if resumes is not None and k < len(resumes):
            rt = self.step.resume_type
            if rt is None:
                return _Ready(resumes[k])
            from .typecheck import from_json

            return _Ready(from_json(rt, resumes[k]))
        raise _Suspend(payload)

    def bail(self, output: Any = None) -> typing.NoReturn:
        """End the whole run successfully now, with ``output`` (status ``bailed``)."""
        raise _Bail(output)

    def cancel(self, reason: str = "cancelled by a step") -> typing.NoReturn:
        """End the whole run as ``cancelled``."""
        raise _Cancel(reason)

    def __repr__(self) -> str:
        return f"<StepContext {self.path} run={self.run_id}>"


class Step(Generic[InT, OutT]):
    """One unit of a workflow: a function, an agent, a tool or a nested workflow.

    Options: ``id`` (unique among its siblings; defaults to the function's name),
    ``input``/``output`` (override the types read from the hints), ``resume`` (the type of the
    data a human sends back when it suspends), ``state`` (the shared-state type it expects),
    ``retries`` (extra attempts after a failure) with ``backoff`` seconds doubling per attempt
    (capped by ``max_backoff``), ``timeout`` (seconds per attempt), ``rerun`` (False: never
    run twice, even after a crash; see the durability guarantees), ``description``.
    """

    __slots__ = (
        "_localns",
        "_mode",
        "_plain",
        "_resolved",
        "backoff",
        "description",
        "fn",
        "id",
        "input_type",
        "is_async",
        "kind",
        "max_backoff",
        "output_type",
        "prompt",
        "rerun",
        "resume_type",
        "retries",
        "state_type",
        "target",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any] | None,
        *,
        id: str | None = None,
        kind: str = "function",
        target: Any = None,
        input: Any = None,
        output: Any = None,
        resume: Any = None,
        state: Any = None,
        retries: int = 0,
        backoff: float = 0.1,
        max_backoff: float = 30.0,
        timeout: float | None = None,
        rerun: bool = True,
        description: str | None = None,
        prompt: Callable[[Any], str] | None = None,
    ) -> None:
        self.fn = fn
        self.kind = kind
        self.target = target
        name = id or (getattr(fn, "__name__", None) if fn is not None else None)
        if not name:
            raise WorkflowDefinitionError("a step needs an id (give id=...)")
        self.id = _check_id(name)
        self.input_type = input
        self.output_type = output
        self.resume_type = resume
        self.state_type = state
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.rerun = rerun
        self.description = description
        self.prompt = prompt
        self.is_async = False
        self._mode = _CALL_IN
        self._plain = False
        self._resolved = False
        self._localns: dict[str, Any] | None = None

    # -- construction helpers ------------------------------------------------------------

    @classmethod
    def of(cls, item: Any, **options: Any) -> Step[Any, Any]:
        """A step from a function, an :class:`~vivace.Agent`, a tool or a :class:`Workflow`."""
        if isinstance(item, Step):
            return item.with_options(**options) if options else item
        from .builder import Workflow

        if isinstance(item, Workflow):
            return cls(
                None,
                id=options.pop("id", None) or item.id,
                kind="workflow",
                target=item,
                description=options.pop("description", None) or item.description,
                **options,
            )
        if _is_agent(item):
            return cls.from_agent(item, **options)
        from ..tools.tool import BaseTool

        if isinstance(item, BaseTool):
            return cls.from_tool(item, **options)
        if callable(item):
            return cls(item, **options)
        raise WorkflowDefinitionError(
            f"cannot make a step of {item!r}: use a function, an Agent, a tool or a Workflow"
        )

    @classmethod
    def from_agent(
        cls,
        agent: Any,
        *,
        id: str | None = None,
        prompt: Callable[[Any], str] | None = None,
        input: Any = None,
        **options: Any,
    ) -> Step[Any, Any]:
        """A step that runs ``agent``: the input becomes the prompt (``str`` as is, other
        values as JSON, or ``prompt(input)``), the output is the agent's output type. Tool
        approvals of the agent suspend the step; resume it with ``{call_id: True/False}``."""
        out = agent.output_type if agent.output_type is not None else str
        return cls(
            None,
            id=id or agent.name or "agent",
            kind="agent",
            target=agent,
            input=input if input is not None else (str if prompt is None else UNKNOWN),
            output=out,
            resume=options.pop("resume", None) or dict[str, Any],
            prompt=prompt,
            description=options.pop("description", None) or agent.description,
            **options,
        )

    @classmethod
    def from_tool(cls, tool: Any, *, id: str | None = None, **options: Any) -> Step[Any, Any]:
        """A step that calls a tool with its input as the arguments (a dict or a model)."""
        from ..tools.tool import Tool, as_tool

        t = as_tool(tool)
        output = options.pop("output", None)
        if output is None and isinstance(t, Tool):
            output = _return_type(t.function)
        return cls(
            None,
            id=id or t.name,
            kind="tool",
            target=t,
            input=options.pop("input", None) or dict[str, Any],
            output=output if output is not None else UNKNOWN,
            **options,
        )

    def with_options(self, **options: Any) -> Step[InT, OutT]:
        """A copy with some options changed (``id``, ``retries``, ``timeout``...)."""
        clone = Step.__new__(Step)
        for name in Step.__slots__:
            setattr(clone, name, getattr(self, name))
        clone._resolved = False  # options change how it is called (read again when built)
        for key, value in options.items():
            if key in ("input", "output", "resume", "state"):
                key = f"{key}_type"
            if key not in Step.__slots__ or key.startswith("_"):
                raise WorkflowDefinitionError(f"unknown step option {key!r}")
            if key == "id":
                value = _check_id(value)
            setattr(clone, key, value)
        return clone

    def with_id(self, id: str) -> Step[InT, OutT]:
        """This step under another id (to use one step twice in a workflow)."""
        return self.with_options(id=id)

    # -- types ------------------------------------------------------------------------------

    def resolve(self) -> Step[InT, OutT]:
        """Read the function's type hints once (called when a workflow is built)."""
        if self._resolved:
            return self
        if self.kind == "function":
            self._resolve_function()
        elif self.kind == "workflow":
            wf: Workflow = self.target
            if self.input_type is None:
                self.input_type = wf.input_type
            if self.output_type is None:
                self.output_type = wf.final_output_type
            if self.state_type is None:
                self.state_type = wf.state_type
            self.is_async = True
        else:
            self.is_async = True
        for name in ("input_type", "output_type"):
            if getattr(self, name) is None:
                setattr(self, name, UNKNOWN)
        # a plain step: called with its input alone, nothing to retry or time out
        self._plain = (
            self.kind == "function"
            and self._mode == _CALL_IN
            and not self.retries
            and self.timeout is None
            and self.rerun
        )
        self._resolved = True
        return self

    def _resolve_function(self) -> None:
        fn = self.fn
        assert fn is not None
        target = inspect.unwrap(fn)
        self.is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - callable objects
        )
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise WorkflowDefinitionError(f"step {self.id!r}: no signature ({exc})") from None
        try:
            hints = typing.get_type_hints(target, localns=self._localns, include_extras=True)
        except NameError as exc:
            raise WorkflowDefinitionError(
                f"step {self.id!r}: cannot resolve a type hint ({exc}); define the type at "
                "module level, or give input=/output= to @step",
                step=self.id,
            ) from None
        params = [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        ctx_index = None
        inputs: list[inspect.Parameter] = []
        for i, p in enumerate(params):
            hint = hints.get(p.name)
            if _is_step_context(hint) or (hint is None and p.name == "ctx"):
                ctx_index = i
            elif p.default is p.empty:
                inputs.append(p)
        if len(inputs) > 1:
            raise WorkflowDefinitionError(
                f"step {self.id!r} takes {len(inputs)} inputs "
                f"({', '.join(p.name for p in inputs)}): a step takes one input (a model or a "
                "dict) and optionally a StepContext",
                step=self.id,
            )
        if inputs and inputs[0].kind is inspect.Parameter.KEYWORD_ONLY:
            raise WorkflowDefinitionError(
                f"step {self.id!r}: its input must be positional", step=self.id
            )
        if inputs:
            in_index = params.index(inputs[0])
            if ctx_index is None:
                self._mode = _CALL_IN
            else:
                self._mode = _CALL_IN_CTX if in_index < ctx_index else _CALL_CTX_IN
            if self.input_type is None:
                self.input_type = hints.get(inputs[0].name, UNKNOWN)
        else:
            self._mode = _CALL_CTX if ctx_index is not None else _CALL_NONE
            if self.input_type is None:
                self.input_type = UNKNOWN
        if self.output_type is None:
            out = hints.get("return", UNKNOWN)
            if self.is_async:
                out = _unwrap_awaitable(out)
            self.output_type = out
        if self.description is None and fn.__doc__:
            self.description = inspect.cleandoc(fn.__doc__).split("\n\n")[0]

    @property
    def wants_ctx(self) -> bool:
        return self._mode in (_CALL_IN_CTX, _CALL_CTX, _CALL_CTX_IN) or self.kind != "function"

    def describe(self) -> dict[str, Any]:
        """A JSON description (kind, types as names)."""
        self.resolve()
        return {
            "id": self.id,
            "kind": self.kind,
            "input": type_name(self.input_type),
            "output": type_name(self.output_type),
            "resume": type_name(self.resume_type) if self.resume_type is not None else None,
            "retries": self.retries,
            "timeout": self.timeout,
            "description": self.description,
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (for tests)."""
        if self.fn is None:
            raise TypeError(f"step {self.id!r} ({self.kind}) is not a plain function")
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Step {self.id} ({self.kind})>"


def _check_id(name: str) -> str:
    """A step id: the id rule, and none of the path separators."""
    if any(c in name for c in ".[]"):
        raise WorkflowDefinitionError(f"step id {name!r}: '.', '[' and ']' are reserved")
    from ..identifiers import check_identifier

    return check_identifier("step", name)


def _return_type(fn: Callable[..., Any]) -> Any:
    try:
        hints = typing.get_type_hints(inspect.unwrap(fn))
    except Exception:
        return UNKNOWN
    out = hints.get("return", UNKNOWN)
    if inspect.iscoroutinefunction(inspect.unwrap(fn)):
        out = _unwrap_awaitable(out)
    return out


def _unwrap_awaitable(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is not None and getattr(origin, "__name__", "") in ("Coroutine", "Awaitable"):
        args = typing.get_args(tp)
        return args[-1] if args else UNKNOWN
    return tp


def _is_step_context(hint: Any) -> bool:
    if hint is None:
        return False
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, StepContext)


def _is_agent(item: Any) -> bool:
    from ..agent.agent import Agent

    return isinstance(item, Agent)


@overload
def step(fn: Callable[..., Any], /) -> Step[Any, Any]: ...


@overload
def step(
    *,
    id: str | None = None,
    input: Any = None,
    output: Any = None,
    resume: Any = None,
    state: Any = None,
    retries: int = 0,
    backoff: float = 0.1,
    max_backoff: float = 30.0,
    timeout: float | None = None,
    rerun: bool = True,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Step[Any, Any]]: ...


def step(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a workflow step: ``@step`` or ``@step(retries=2, timeout=10, resume=T)``.

    The function takes one input (typed) and optionally a :class:`StepContext`, and returns
    the output (typed). Sync and async functions both work.
    """
    # the caller's local names resolve string hints of steps defined inside functions
    caller = sys._getframe(1)
    localns = caller.f_locals if caller.f_code.co_name != "<module>" else None
    if fn is not None:
        made: Step[Any, Any] = Step(fn, **options)
        made._localns = localns
        return made

    def wrap(f: Callable[..., Any]) -> Step[Any, Any]:
        made: Step[Any, Any] = Step(f, **options)
        made._localns = localns
        return made

    return wrap
