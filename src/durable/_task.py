"""One checkpointed, retried task call: look up the record, else run, then save.

Outside a workflow a task is its plain function: no store, no retries.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from durable import _serde
from durable._backoff_clock import backoff_sleep
from durable._context import RunContext, StepContext, current_run, current_step
from durable.backoff import Backoff
from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    NonRetryableError,
    NotInWorkflowError,
    RunCancelledError,
    TaskFailedError,
)
from durable.stores.base import StepRecord

if TYPE_CHECKING:
    from durable._workflow import Workflow

P = ParamSpec("P")
R = TypeVar("R")
_P2 = ParamSpec("_P2")
_S = TypeVar("_S")

logger = logging.getLogger("durable.task")

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
        self._annotation = _serde.return_annotation(fn)
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
        return self._checkpointed(ctx, resolved, position, args, kwargs)

    async def _checkpointed(
        self,
        ctx: RunContext,
        step_id: str,
        position: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        ensure_may_continue(ctx)
        record = ctx.recorded(self.name, step_id, position)
        if record is None:
            branch = ctx.branch_started()
            try:
                record = await self._execute(ctx, step_id, position, args, kwargs)
            finally:
                if branch is not None:
                    ctx.in_flight.discard(branch)
        return self._outcome(ctx, record)

    def _outcome(self, ctx: RunContext, record: StepRecord) -> R:
        return step_outcome(ctx, record, self._annotation)  # type: ignore[no-any-return]

    async def _execute(
        self,
        ctx: RunContext,
        step_id: str,
        position: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> StepRecord:
        started = time.time()
        attempt = 0
        what = f"task {self.name!r} (step {step_id!r} of run {ctx.run_id!r})"
        while True:
            attempt += 1
            # A task body is plain code: tasks it calls are ordinary function
            # calls, not steps of their own, so a retried body never re-allocates ids.
            outer = current_run.set(None)
            step = current_step.set(
                StepContext(self.app.name, ctx.workflow, ctx.run_id, step_id, self.name, attempt)
            )
            try:
                try:
                    if self.timeout is None:
                        value = await self.fn(*args, **kwargs)
                    else:
                        value = await self._attempt_within_timeout(
                            ctx, step_id, attempt, args, kwargs
                        )
                finally:
                    current_step.reset(step)
                    current_run.reset(outer)
                result = _serde.encode(value, what=what, limit=self.app.max_value_bytes)
            except Exception as exc:
                if attempt > self.retries or not self._retryable(exc):
                    logger.warning(
                        "%s failed after %d attempt(s): %r",
                        what,
                        attempt,
                        exc,
                        extra={"action": "step_failed", "run_id": ctx.run_id, "step_id": step_id},
                    )
                    record = StepRecord(
                        step_id=step_id,
                        position=position,
                        task=self.name,
                        status="failed",
                        result=None,
                        error=_serde.encode_error(exc),
                        attempts=attempt,
                        started_at=started,
                        finished_at=time.time(),
                    )
                    stored = await self.app._save_step(ctx, record)
                    if stored == record:
                        raise
                    return stored
                delay = self.backoff(attempt)
                logger.info(
                    "%s attempt %d failed (%r); retrying in %.3gs",
                    what,
                    attempt,
                    exc,
                    delay,
                    extra={"action": "step_retry", "run_id": ctx.run_id, "step_id": step_id},
                )
                await backoff_sleep(delay)
                ensure_may_continue(ctx)
                continue
            record = StepRecord(
                step_id=step_id,
                position=position,
                task=self.name,
                status="completed",
                result=result,
                error=None,
                attempts=attempt,
                started_at=started,
                finished_at=time.time(),
            )
            return await self.app._save_step(ctx, record)

    async def _attempt_within_timeout(
        self,
        ctx: RunContext,
        step_id: str,
        attempt: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        limit = asyncio.timeout(self.timeout)
        try:
            async with limit:
                return await self.fn(*args, **kwargs)
        except TimeoutError as exc:
            if not limit.expired():
                raise  # the body's own TimeoutError, not this limit
            raise TimeoutError(
                f"task {self.name!r} (step {step_id!r} of run {ctx.run_id!r}): attempt "
                f"{attempt} did not finish within its timeout of {self.timeout:g}s"
            ) from exc

    def _retryable(self, exc: Exception) -> bool:
        if isinstance(exc, NonRetryableError | LeaseLostError | RunCancelledError):
            return False
        return self.retry_on(exc)


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


def ensure_may_continue(ctx: RunContext) -> None:
    """Stop the run at a step boundary when it was cancelled or its lease lost."""
    if ctx.lease_lost:
        raise LeaseLostError(f"run {ctx.run_id!r}: this process no longer owns the run")
    if ctx.cancel_requested:
        raise RunCancelledError(f"run {ctx.run_id!r} of workflow {ctx.workflow!r} was cancelled")
    if ctx.parent is not None and (ancestor := ctx.cancelled_ancestor()) is not None:
        raise RunCancelledError(
            f"run {ctx.run_id!r} of workflow {ctx.workflow!r} was cancelled with its "
            f"parent run {ancestor.run_id!r}"
        )


def step_outcome(ctx: RunContext, record: StepRecord, annotation: Any) -> Any:
    """The value a recorded step returns, or its recorded error raised again."""
    if record.status == "completed":
        assert record.result is not None
        value = _serde.loads(record.result)
        return value if annotation is None else _serde.rebuild(value, annotation)
    raise _rebuild_step_error(ctx, record)


def _rebuild_step_error(ctx: RunContext, record: StepRecord) -> BaseException:
    assert record.error is not None
    rebuilt = _serde.rebuild_error(record.error)
    if rebuilt is not None:
        return rebuilt
    error_type, message = _serde.describe_error(record.error)
    return TaskFailedError(
        f"task {record.task!r} (step {record.step_id!r} of run {ctx.run_id!r}) failed "
        f"earlier with {error_type}: {message}",
        error_type=error_type,
        step_id=record.step_id,
    )


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
