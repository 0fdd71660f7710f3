"""One checkpointed step: look up its record, else run it (with retries), then save it.

A task call inside a workflow is a step. Its record is saved before the
workflow sees the outcome; on replay the record answers and the body does
not run. A failure that exhausted its retries is recorded too, and raised
again on replay, so ``except`` branches take the same path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from durable.engine import clock, serde
from durable.engine.context import RunContext, StepContext, current_run, current_step
from durable.errors import (
    LeaseLostError,
    NonDeterminismError,
    NonRetryableError,
    RunCancelledError,
    TaskFailedError,
)
from durable.stores.base import StepRecord, StepStatus

if TYPE_CHECKING:
    from durable.engine.specs import TaskSpec

logger = logging.getLogger("durable.task")


def ensure_may_continue(ctx: RunContext) -> None:
    """Stop the run at a step boundary: it ended, was cancelled, or its lease was lost."""
    if ctx.ended:
        # Its outcome is recorded: a straggling branch must not start a body.
        raise RunCancelledError(
            f"run {ctx.run_id!r} of workflow {ctx.workflow!r} has already ended; "
            "no step of it may start"
        )
    if ctx.lease_lost:
        raise LeaseLostError(f"run {ctx.run_id!r}: this process no longer owns the run")
    if ctx.cancel_requested:
        raise RunCancelledError(f"run {ctx.run_id!r} of workflow {ctx.workflow!r} was cancelled")
    if ctx.parent is not None and (ancestor := ctx.cancelled_ancestor()) is not None:
        raise RunCancelledError(
            f"run {ctx.run_id!r} of workflow {ctx.workflow!r} was cancelled with its "
            f"parent run {ancestor.run_id!r}"
        )


def step_outcome(ctx: RunContext, record: StepRecord, result_type: Any) -> Any:
    """The value a recorded step returns, or its recorded error raised again."""
    if record.status == "completed":
        assert record.result is not None
        value = serde.loads(record.result)
        return value if result_type is None else serde.rebuild(value, result_type)
    raise _rebuild_step_error(ctx, record)


def _rebuild_step_error(ctx: RunContext, record: StepRecord) -> BaseException:
    assert record.error is not None
    rebuilt = serde.rebuild_error(record.error)
    if rebuilt is not None:
        return rebuilt
    error_type, message = serde.describe_error(record.error)
    return TaskFailedError(
        f"task {record.task!r} (step {record.step_id!r} of run {ctx.run_id!r}) failed "
        f"earlier with {error_type}: {message}",
        error_type=error_type,
        step_id=record.step_id,
    )


async def save(ctx: RunContext, record: StepRecord) -> StepRecord:
    """Store ``record`` as a step of the run (first writer wins); the stored record."""
    runtime = ctx.runtime
    try:
        saved = await runtime.store.save_step(runtime.app, ctx.run_id, ctx.token, record)
    except LeaseLostError:
        ctx.lease_lost = True
        raise
    if saved.cancel_requested:
        ctx.cancel_requested = True
    if saved.step.task != record.task:
        # First writer wins, and the first writer was another task: its
        # result must not be handed to this one.
        raise NonDeterminismError(
            f"run {ctx.run_id!r}: step {record.step_id!r} is recorded for task "
            f"{saved.step.task!r}, not {record.task!r}; the code that wrote it "
            "differs from the code running now"
        )
    return saved.step


def new_record(
    step_id: str,
    position: int,
    task: str,
    status: StepStatus,
    *,
    result: str | None = None,
    error: str | None = None,
    attempts: int = 1,
    started_at: float,
    finished_at: float | None = None,
) -> StepRecord:
    """A step record; ``finished_at`` defaults to now."""
    return StepRecord(
        step_id=step_id,
        position=position,
        task=task,
        status=status,
        result=result,
        error=error,
        attempts=attempts,
        started_at=started_at,
        finished_at=time.time() if finished_at is None else finished_at,
    )


async def run_task(
    spec: TaskSpec,
    ctx: RunContext,
    step_id: str,
    position: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A task call inside a workflow: the recorded outcome, else the body run and recorded."""
    ensure_may_continue(ctx)
    record = ctx.recorded(spec.name, step_id, position)
    if record is None:
        branch = ctx.branch_started()
        try:
            record = await _execute(spec, ctx, step_id, position, args, kwargs)
        finally:
            if branch is not None:
                ctx.in_flight.discard(branch)
    elif ctx.observation is not None:
        ctx.observation.step_replayed(step_id, spec.name)
    return step_outcome(ctx, record, spec.result_type)


async def _execute(
    spec: TaskSpec,
    ctx: RunContext,
    step_id: str,
    position: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> StepRecord:
    """Run the body until it succeeds or may not be retried; the stored record."""
    started = time.time()
    what = f"task {spec.name!r} (step {step_id!r} of run {ctx.run_id!r})"
    attempt = 0
    while True:
        attempt += 1
        watch = None
        if ctx.observation is not None:
            watch = ctx.observation.attempt_started(step_id, spec.name, attempt)
        try:
            value = await _attempt(spec, ctx, step_id, attempt, args, kwargs)
            result = serde.encode(value, what=what, limit=ctx.runtime.max_value_bytes)
        except BaseException as exc:
            if watch is not None:
                watch.ended(exc)
            if not isinstance(exc, Exception):
                raise
            if attempt > spec.retries or not _retryable(spec, exc):
                return await _record_failure(spec, ctx, step_id, position, exc, attempt, started)
            await _wait_before_retry(spec, ctx, step_id, what, attempt, exc)
            continue
        if watch is not None:
            watch.ended(None)
        record = new_record(
            step_id,
            position,
            spec.name,
            "completed",
            result=result,
            attempts=attempt,
            started_at=started,
        )
        return await save(ctx, record)


async def _attempt(
    spec: TaskSpec,
    ctx: RunContext,
    step_id: str,
    attempt: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """One execution of the body, as plain code inside the step's context."""
    # A task body is plain code: tasks it calls are ordinary function calls,
    # not steps of their own, so a retried body never re-allocates ids.
    outer = current_run.set(None)
    step = current_step.set(
        StepContext(ctx.runtime.app, ctx.workflow, ctx.run_id, step_id, spec.name, attempt)
    )
    try:
        if spec.timeout is None:
            return await spec.fn(*args, **kwargs)
        return await _within_timeout(spec, ctx, step_id, attempt, args, kwargs)
    finally:
        current_step.reset(step)
        current_run.reset(outer)


async def _within_timeout(
    spec: TaskSpec,
    ctx: RunContext,
    step_id: str,
    attempt: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    limit = asyncio.timeout(spec.timeout)
    try:
        async with limit:
            return await spec.fn(*args, **kwargs)
    except TimeoutError as exc:
        if not limit.expired():
            raise  # the body's own TimeoutError, not this limit
        raise TimeoutError(
            f"task {spec.name!r} (step {step_id!r} of run {ctx.run_id!r}): attempt "
            f"{attempt} did not finish within its timeout of {spec.timeout:g}s"
        ) from exc


async def _record_failure(
    spec: TaskSpec,
    ctx: RunContext,
    step_id: str,
    position: int,
    exc: Exception,
    attempts: int,
    started: float,
) -> StepRecord:
    """Record the final failure; raise it, unless another writer recorded the step first."""
    logger.warning(
        "task %r (step %r of run %r) failed after %d attempt(s): %r",
        spec.name,
        step_id,
        ctx.run_id,
        attempts,
        exc,
        extra={"action": "step_failed", "run_id": ctx.run_id, "step_id": step_id},
    )
    error = serde.encode_error(exc)
    record = new_record(
        step_id, position, spec.name, "failed", error=error, attempts=attempts, started_at=started
    )
    stored = await save(ctx, record)
    if stored == record:
        raise exc
    return stored


async def _wait_before_retry(
    spec: TaskSpec, ctx: RunContext, step_id: str, what: str, attempt: int, exc: Exception
) -> None:
    delay = spec.backoff(attempt)
    if ctx.observation is not None:
        ctx.observation.retrying(step_id, spec.name, attempt, delay)
    logger.info(
        "%s attempt %d failed (%r); retrying in %.3gs",
        what,
        attempt,
        exc,
        delay,
        extra={"action": "step_retry", "run_id": ctx.run_id, "step_id": step_id},
    )
    await clock.backoff_sleep(delay)
    ensure_may_continue(ctx)


def _retryable(spec: TaskSpec, exc: Exception) -> bool:
    if isinstance(exc, NonRetryableError | LeaseLostError | RunCancelledError):
        return False
    return spec.retry_on(exc)
