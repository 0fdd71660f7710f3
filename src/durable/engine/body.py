"""Running the body of a claimed run, and recording its outcome.

The caller owns the run (its claim acquired it). The body runs with the run's
context set, its lease renewed by the heartbeat, and its own timeout; its
outcome is recorded with the run's fencing token. A body whose run was taken
over meanwhile records nothing: it answers :data:`LOST`, and the executor
adopts the new owner's outcome instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from durable.engine import serde
from durable.engine.context import RunContext, current_run, current_step
from durable.engine.parking import Parked, ParkPolicy
from durable.errors import (
    LeaseLostError,
    RunCancelledError,
    RunFailedError,
    WorkflowTimeoutError,
)
from durable.stores.base import Claim, FinalStatus, RunRecord

if TYPE_CHECKING:
    from durable.engine.lease import Heartbeat
    from durable.engine.observe import RunOutcome
    from durable.engine.runtime import Runtime
    from durable.engine.specs import WorkflowSpec

logger = logging.getLogger("durable.run")


class Lost(enum.Enum):
    """The answer of a body whose run another process owns now, or that parked it."""

    LOST = "lost"
    PARKED = "parked"


LOST = Lost.LOST
# The run was parked in the store (see durable.engine.parking): no outcome yet.
PARKED = Lost.PARKED


async def run_claimed(
    runtime: Runtime,
    heartbeat: Heartbeat,
    wf_fn: WorkflowSpec,
    claim: Claim,
    *,
    resumed: bool,
    parent: RunContext | None,
    on_start: Callable[[RunContext], None] | None = None,
    takeover: bool = False,
    park: ParkPolicy | None = None,
) -> Any:
    """Run the body of the run ``claim`` acquired; its output, :data:`LOST` or :data:`PARKED`.

    ``on_start`` is called with the run's context before the body starts;
    ``takeover``: the claim took the run from an owner that is gone;
    ``park`` lets its long waits park it (executed by a worker).
    """
    run = claim.run
    # The body always gets the stored arguments, decoded: the values a resumed
    # run will get too (a tuple is a list, int keys are strings unless
    # annotated), so every execution takes one path.
    args, kwargs = wf_fn.decode_inputs(run.inputs)
    ctx = RunContext.start(runtime, run.run_id, wf_fn.name, run.token, claim.steps)
    ctx.resumed = resumed
    ctx.parent = parent
    ctx.cancel_requested = run.cancel_requested
    ctx.park = park
    if on_start is not None:
        on_start(ctx)
    logger.info(
        "%s run %s of workflow %s (attempt %d, %d recorded steps)",
        "resuming" if claim.steps or run.attempts > 1 else "starting",
        run.run_id,
        wf_fn.name,
        run.attempts,
        len(claim.steps),
        extra={"action": "run_start", "run_id": run.run_id},
    )
    observer = runtime.observer
    if observer is not None:
        ctx.observation = observer.run_started(
            run, recorded_steps=len(claim.steps), takeover=takeover
        )
    heartbeat.add(ctx)
    reset = current_run.set(ctx)
    # A workflow called from a task body is not inside that task's step.
    reset_step = current_step.set(None)
    outcome: RunOutcome = "interrupted"
    error: BaseException | None = None
    try:
        output = await _record_body(ctx, heartbeat, wf_fn, run, args, kwargs)
        outcome = "lost" if output is LOST else "parked" if output is PARKED else "completed"
        return output
    except RunCancelledError as exc:
        outcome, error = "cancelled", exc
        raise
    except Exception as exc:
        outcome, error = "failed", exc
        raise
    finally:
        current_step.reset(reset_step)
        current_run.reset(reset)
        heartbeat.discard(ctx)
        if ctx.observation is not None:
            ctx.observation.ended(outcome, error)


async def _record_body(
    ctx: RunContext,
    heartbeat: Heartbeat,
    wf_fn: WorkflowSpec,
    run: RunRecord,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run the body and record how it ended; the decoded output, or :data:`LOST`."""
    try:
        value = await _call_body(ctx, wf_fn, run, args, kwargs)
        if ctx.parked:
            return PARKED
        if ctx.lease_lost:
            return LOST
        what = f"workflow {wf_fn.name!r} (run {run.run_id!r})"
        output = serde.encode(value, what=what, limit=ctx.runtime.max_value_bytes)
    except asyncio.CancelledError:
        # Stop renewing first: a renewal after the release would lease the
        # run again and keep the next caller out until the lease expires.
        heartbeat.discard(ctx)
        await _shielded(_interrupted(ctx, wf_fn))
        raise
    except Parked:
        heartbeat.discard(ctx)
        _log_parked(ctx)
        return PARKED
    except Exception as exc:
        if ctx.parked:
            # Raised while the parked body unwound (a step in a finally block).
            _log_parked(ctx)
            return PARKED
        if ctx.lease_lost or isinstance(exc, LeaseLostError):
            return LOST
        status: FinalStatus = "cancelled" if isinstance(exc, RunCancelledError) else "failed"
        if await _finish(ctx, status, error=serde.encode_error(exc)) is LOST:
            return LOST
        logger.info(
            "run %s %s: %r",
            run.run_id,
            status,
            exc,
            extra={"action": f"run_{status}", "run_id": run.run_id},
        )
        raise
    if await _finish(ctx, "completed", output=output) is LOST:
        return LOST
    logger.info(
        "run %s completed", run.run_id, extra={"action": "run_completed", "run_id": run.run_id}
    )
    # Return the stored form, so a first run and a replay give equal values.
    return wf_fn.decode_output(output)


def _log_parked(ctx: RunContext) -> None:
    logger.info(
        "run %s parked until it is due",
        ctx.run_id,
        extra={"action": "run_parked", "run_id": ctx.run_id},
    )


async def _call_body(
    ctx: RunContext,
    wf_fn: WorkflowSpec,
    run: RunRecord,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The body's return value; no step of the run starts once it has ended."""
    if ctx.cancel_requested:
        raise RunCancelledError(f"run {run.run_id!r} of workflow {wf_fn.name!r} was cancelled")
    ctx.main_task = asyncio.current_task()
    try:
        return await _within_timeout(ctx, wf_fn, run, args, kwargs)
    finally:
        # A gather branch that outlives the body (a sibling failed) must not
        # start a task body afterwards: its side effect would follow an
        # outcome that is already decided.
        ctx.ended = True
        await _stop_stragglers(ctx)


async def _within_timeout(
    ctx: RunContext,
    wf_fn: WorkflowSpec,
    run: RunRecord,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if wf_fn.timeout is None:
        return await wf_fn.fn(*args, **kwargs)
    remaining = run.created_at + wf_fn.timeout - time.time()
    message = (
        f"workflow {wf_fn.name!r} (run {run.run_id!r}) did not finish within its "
        f"timeout of {wf_fn.timeout}s"
    )
    if remaining <= 0:
        raise WorkflowTimeoutError(message)
    limit = asyncio.timeout(remaining)
    try:
        async with limit:
            return await wf_fn.fn(*args, **kwargs)
    except TimeoutError as exc:
        if not limit.expired() or isinstance(exc, WorkflowTimeoutError):
            raise  # raised by the body (e.g. a task's own timeout), not this limit
        # Before the child runs it was waiting on handle their cancellation.
        ctx.timed_out = True
        raise WorkflowTimeoutError(message) from exc


async def _interrupted(ctx: RunContext, wf_fn: WorkflowSpec) -> None:
    """Hand back a run whose caller was cancelled, or end it if its parent timed out."""
    runtime = ctx.runtime
    timed_out = _timed_out_ancestor(ctx)
    if timed_out is None:
        await runtime.store.release_run(runtime.app, ctx.run_id, ctx.token)
        return
    # A parent past its timeout never resumes this child: end it rather than
    # leave it for recover() to finish for nothing.
    stopped = RunCancelledError(
        f"run {ctx.run_id!r} of workflow {wf_fn.name!r} was cancelled: its "
        f"parent run {timed_out.run_id!r} timed out"
    )
    await runtime.store.finish_run(
        runtime.app, ctx.run_id, ctx.token, "cancelled", error=serde.encode_error(stopped)
    )


async def _finish(
    ctx: RunContext,
    status: FinalStatus,
    *,
    output: str | None = None,
    error: str | None = None,
) -> Lost | None:
    runtime = ctx.runtime
    try:
        await runtime.store.finish_run(
            runtime.app, ctx.run_id, ctx.token, status, output=output, error=error
        )
    except LeaseLostError:
        return LOST
    return None


def outcome(wf_fn: WorkflowSpec, run: RunRecord) -> Any:
    """The output of a finished run, or its error raised."""
    if run.status == "completed":
        return wf_fn.decode_output(run.output)
    if run.status == "cancelled":
        raise RunCancelledError(
            f"run {run.run_id!r} of workflow {run.workflow!r} is cancelled; "
            "resume it with `await wf.resume(run_id)`"
        )
    raise failed_error(run)


def failed_error(run: RunRecord) -> BaseException:
    """The error a failed run raises to its callers: its own type when rebuildable."""
    if run.error is not None:
        rebuilt = serde.rebuild_error(run.error)
        if rebuilt is not None:
            return rebuilt
        error_type, message = serde.describe_error(run.error)
    else:
        error_type, message = "", "unknown error"
    return RunFailedError(
        f"run {run.run_id!r} of workflow {run.workflow!r} failed: {error_type}: {message}",
        error_type=error_type,
        run_id=run.run_id,
    )


def _timed_out_ancestor(ctx: RunContext) -> RunContext | None:
    ancestor = ctx.parent
    while ancestor is not None and not ancestor.timed_out:
        ancestor = ancestor.parent
    return ancestor


async def _stop_stragglers(ctx: RunContext) -> None:
    """Cancel the steps still running beside a body that has ended, and wait for them.

    When one branch of ``asyncio.gather`` fails, the others keep running; if
    the run ended now, a re-run would execute those steps again beside them,
    and their results would be refused anyway (the run is no longer theirs).
    """
    pending = [task for task in ctx.in_flight if not task.done()]
    if not pending:
        return
    logger.info(
        "run %s: its body ended with %d step(s) still running; cancelling them",
        ctx.run_id,
        len(pending),
        extra={"action": "steps_cancelled", "run_id": ctx.run_id},
    )
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)


async def _shielded(write: Awaitable[None]) -> None:
    """Finish a store write even though our task is being cancelled."""
    task = asyncio.ensure_future(write)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.shield(task)
