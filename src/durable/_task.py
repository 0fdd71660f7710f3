"""Tasks: ``@wf.task`` functions, checkpointed steps inside a workflow.

Outside a workflow a task is its plain function: no store, no retries. The
step itself (replay, retries, recording) is the engine's ``steps.run_task``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from durable.backoff import Backoff
from durable.engine import serde, steps
from durable.engine.context import StepContext, current_run, current_step
from durable.errors import ConfigurationError, NotInWorkflowError

if TYPE_CHECKING:
    from durable._workflow import Workflow

P = ParamSpec("P")
R = TypeVar("R")
_P2 = ParamSpec("_P2")
_S = TypeVar("_S")

RetryFilter = Callable[[BaseException], bool]


class Task(Generic[P, R]):
    """A task function wrapped by ``@wf.task``.

    Call it like the original function. Inside a workflow pass ``step_id=...``
    (a keyword the wrapper consumes) to checkpoint calls in a loop separately;
    ``task.with_step_id(...)`` is the same with full type checking.
    """

    def __init__(
        self,
        app: Workflow,
        fn: Callable[P, Coroutine[Any, Any, R]],
        *,
        name: str,
        retries: int,
        backoff: Backoff,
        retry_on: RetryFilter,
        timeout: float | None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.retries = retries
        self.backoff = backoff
        self.retry_on = retry_on
        self.timeout = timeout
        self.result_type = serde.return_annotation(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<durable task {self.name!r} of app {self.app.name!r}>"

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Task[P, R]: ...

    @overload
    def __get__(
        self: Task[Concatenate[_S, _P2], R], obj: _S, owner: type[Any] | None = None
    ) -> BoundTask[_P2, R]: ...

    def __get__(self, obj: Any, owner: type[Any] | None = None) -> Any:
        # A task defined in a class body is a method: bind it like a function.
        if obj is None:
            return self
        return BoundTask(self, obj)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        step_id = kwargs.pop("step_id", None)
        return self._call(step_id, args, kwargs)

    def with_step_id(self, step_id: str) -> Callable[P, Coroutine[Any, Any, R]]:
        """This task with an explicit step id: ``await process.with_step_id("item-3")(item)``."""

        def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
            return self._call(step_id, args, kwargs)

        return call

    def _call(
        self, step_id: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, R]:
        ctx = current_run.get()
        if ctx is None:
            return self.fn(*args, **kwargs)
        # Allocate now, at call time, not when the coroutine first runs: call
        # order is what the workflow code fixes, and it is the same on replay.
        resolved, position = ctx.allocate(self.name, step_id)
        call: Coroutine[Any, Any, R] = steps.run_task(self, ctx, resolved, position, args, kwargs)
        # A call never awaited is reported by Python under this name.
        call.__qualname__ = f"durable task {self.name!r} (step {resolved!r})"  # type: ignore[attr-defined]
        return call


class BoundTask(Generic[P, R]):
    """A task method bound to an instance: ``service.charge(...)`` is a step like any task."""

    __slots__ = ("__self__", "task")

    def __init__(self, task: Task[Any, R], obj: object) -> None:
        self.task = task
        self.__self__ = obj

    def __repr__(self) -> str:
        return f"<bound durable task {self.task.name!r} of {self.__self__!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        step_id = kwargs.pop("step_id", None)
        return self.task._call(step_id, (self.__self__, *args), kwargs)

    def with_step_id(self, step_id: str) -> Callable[P, Coroutine[Any, Any, R]]:
        """This task with an explicit step id, as :meth:`Task.with_step_id`."""

        def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
            return self.task._call(step_id, (self.__self__, *args), kwargs)

        return call


def get_current_step() -> StepContext:
    """The task call running now: its run, step id, attempt and idempotency key.

    Call it in the body of a task called from a workflow::

        @wf.task
        async def charge(order_id: str, amount: int) -> str:
            key = durable.current_step().idempotency_key
            return await payments.charge(order_id, amount, idempotency_key=key)

    Raises :class:`~durable.errors.NotInWorkflowError` anywhere else (in a
    workflow body, or in a task called outside a workflow).
    """
    step = current_step.get()
    if step is None:
        raise NotInWorkflowError(
            "durable.current_step() is only available in the body of a task called from a workflow"
        )
    return step


def make_retry_filter(
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | RetryFilter,
    *,
    task: str,
) -> RetryFilter:
    """Normalize ``retry_on`` (exception types or a predicate) into a predicate."""
    if isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        types_: tuple[type[BaseException], ...] = (retry_on,)
    elif isinstance(retry_on, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
    ):
        types_ = retry_on
    elif callable(retry_on) and not inspect.isclass(retry_on):
        return retry_on
    else:
        raise ConfigurationError(
            f"task {task!r}: retry_on must be an exception type, a tuple of them or a "
            f"predicate, got {retry_on!r}"
        )
    return lambda exc: isinstance(exc, types_)
