"""Executing runs: claim, wait for another owner, run the body, record the outcome.

One process executes a run id at most once at a time: callers in the same
process share one asyncio task per run id, and callers in other processes
find the run owned (leased) and wait for its outcome. An owner that dies is
replaced when provably dead (same host, process gone) or when its lease
expires; an owner that lost its lease has its writes fenced off and adopts
the new owner's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from durable import _serde
from durable._context import RunContext, current_run, current_step
from durable._lease import Heartbeat, new_owner_id, owner_is_dead
from durable._task import ensure_may_continue
from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    NonDeterminismError,
    RunCancelledError,
    RunConflictError,
    RunFailedError,
    WorkflowTimeoutError,
)
from durable.stores.base import Claim, LeaseState, NewRun, RunRecord, StepRecord

if TYPE_CHECKING:
    from durable._workflow import Workflow, WorkflowFunction

logger = logging.getLogger("durable.run")

# How often a caller polls a run that another live process executes.
_POLL_MIN = 0.02
_POLL_MAX = 1.0


class _Adopt(Exception):
    """Internal: this execution lost the run; wait for the new owner's outcome."""


class _Execution:
    __slots__ = ("abandoned", "ctx", "parent_ctx", "task", "waiters", "workflow")

    def __init__(self, workflow: str, task: asyncio.Task[Any]) -> None:
        self.workflow = workflow
        self.task = task
        self.waiters = 0
        # Cancelled because its last waiter gave up, not by its own body.
        self.abandoned = False
        # The run's context once its body runs, and its parent's when the parent
        # executes here (it may join after the child started, e.g. on recover()).
        self.ctx: RunContext | None = None
        self.parent_ctx: RunContext | None = None

    def link_parent(self, parent: RunContext) -> None:
        """Make a cancel of ``parent`` reach this child run, whichever started first."""
        self.parent_ctx = parent
        if self.ctx is not None and self.ctx.parent is None:
            self.ctx.parent = parent


class Executor:
    def __init__(self, app: Workflow) -> None:
        self.app = app
        self.owner = new_owner_id()
        self._active: dict[str, _Execution] = {}
        self._open_lock: asyncio.Lock | None = None
        self._opened = False
        self._heartbeat: Heartbeat | None = None
        # The event loop the app serves; another may take over once it stopped.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def ensure_open(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._serve(loop)
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self.app.store.open()
                self._opened = True

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = self._loop
        if previous is not None and previous.is_running() and not previous.is_closed():
            # Its store, heartbeat and waits belong to that loop: sharing them
            # between two running loops (two threads) would corrupt them.
            raise ConfigurationError(
                f"Workflow {self.app.name!r} is in use by an event loop running in another "
                "thread; a Workflow serves one event loop at a time. Create one Workflow "
                "(with its own store) per thread, or run all workflows on one event loop"
            )
        self._loop = loop

    async def close(self) -> None:
        self._opened = False
        if self._heartbeat is not None:
            # A renewal after close would silently reopen the store.
            await self._heartbeat.stop()
        await self.app.store.close()

    # -- entry -----------------------------------------------------------------------

    async def execute(
        self,
        wf_fn: WorkflowFunction[Any, Any],
        run_id: str,
        inputs: str,
        *,
        parent: str | None,
        resume: bool = False,
    ) -> Any:
        """Run, resume or await the run ``run_id``; its output or its error."""
        await self.ensure_open()
        while True:
            execution = self._active.get(run_id)
            if execution is not None and execution.task.cancelled():
                # Cancelled, but its done-callback has not run yet: awaiting it
                # again would raise at once and spin this loop.
                self._forget(run_id, execution, None)
                execution = None
            if execution is None:
                new = NewRun(self.app.name, run_id, wf_fn.name, inputs, parent)
                task = asyncio.get_running_loop().create_task(
                    self._drive(wf_fn, new, resume=resume),
                    name=f"durable-run:{run_id}",
                )
                execution = _Execution(wf_fn.name, task)
                self._active[run_id] = execution
                task.add_done_callback(functools.partial(self._forget, run_id, execution))
            elif execution.workflow != wf_fn.name:
                raise _conflict(self.app.name, run_id, execution.workflow, wf_fn.name)
            if parent is not None:
                caller = current_run.get()
                if caller is not None and caller.run_id == parent:
                    execution.link_parent(caller)
            execution.waiters += 1
            try:
                return await asyncio.shield(execution.task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # Our caller gave up. Stop the execution unless others await it.
                    if execution.waiters == 1:
                        execution.abandoned = True
                        execution.task.cancel()
                    raise
                if execution.abandoned:
                    # Its last other waiter gave up while we joined: start over.
                    continue
                # The body itself raised CancelledError: the run was released as
                # if interrupted, and the caller sees the cancellation, as it
                # would without durable. Starting over would run it in a loop.
                raise
            finally:
                execution.waiters -= 1

    def _forget(self, run_id: str, execution: _Execution, _: object) -> None:
        if self._active.get(run_id) is execution:
            del self._active[run_id]

    async def _drive(
        self,
        wf_fn: WorkflowFunction[Any, Any],
        new: NewRun,
        *,
        resume: bool,
    ) -> Any:
        store = self.app.store
        steal_from: str | None = None
        takeover_tried = False
        adopting = False
        while True:
            if adopting:
                # This process lost the run: never re-run it, take the winner's outcome.
                latest = await store.get_run(self.app.name, new.run_id)
                if latest is None:
                    raise LeaseLostError(f"run {new.run_id!r} disappeared from the store")
                run = await self._await_other_owner(latest, backoff_first=False)
            else:
                claim = await store.claim_run(
                    new,
                    owner=self.owner,
                    lease_ttl=self.app.lease_ttl,
                    steal_from=steal_from,
                    resume=resume,
                )
                run = claim.run
                if run.workflow != wf_fn.name:
                    raise _conflict(self.app.name, run.run_id, run.workflow, wf_fn.name)
                if run.inputs != new.inputs:
                    # A run keeps the arguments it was created with: its recorded
                    # steps were made from them, and recover() and resume() use them.
                    logger.warning(
                        "run %s was created with other arguments (%.200s); it continues "
                        "with those, not with this call's (%.200s)",
                        run.run_id,
                        run.inputs,
                        new.inputs,
                        extra={"action": "run_inputs_differ", "run_id": run.run_id},
                    )
                    new = NewRun(new.app, new.run_id, new.workflow, run.inputs, new.parent_run_id)
                if claim.acquired:
                    # The body always gets the stored arguments, decoded: the values
                    # a resumed run will get too (a tuple is a list, int keys are
                    # strings unless annotated), so every execution takes one path.
                    args, kwargs = wf_fn.decode_inputs(run.inputs)
                    try:
                        return await self._run_body(wf_fn, claim, args, kwargs, resumed=resume)
                    except _Adopt:
                        adopting = True
                        continue
                if run.status == "running":
                    run = await self._await_other_owner(run, backoff_first=takeover_tried)
            if run.status == "running":
                # Its owner is gone or its lease looks expired: try to take over.
                # Only a provably gone owner is named; an expiry judged by our
                # clock is left to the store's clock, or a client whose clock runs
                # ahead would take the run from a live owner.
                steal_from = run.owner if self._owner_gone(run.owner) else None
                takeover_tried = True
                adopting = False
                continue
            return _outcome(wf_fn, run)

    def _owner_gone(self, owner: str | None) -> bool:
        """True when ``owner`` can never write again: dead, or an earlier execution here."""
        return owner is not None and (owner == self.owner or owner_is_dead(owner))

    async def _await_other_owner(self, run: RunRecord, *, backoff_first: bool) -> RunRecord:
        """Wait until the run finishes or may be taken over; the latest record.

        A returned ``running`` record means: claim it now (its owner is dead,
        gone from this process, or its lease looks expired).
        """
        delay = _POLL_MIN
        logged = False
        if backoff_first:
            # A takeover just failed (the store's clock disagrees with ours):
            # look again later rather than spin.
            await asyncio.sleep(delay)
            run = await self.app.store.get_run(self.app.name, run.run_id) or run
        while True:
            if run.status != "running":
                return run
            if run.owner is None or run.owner == self.owner or owner_is_dead(run.owner):
                return run
            if run.lease_expires_at is not None and run.lease_expires_at <= time.time():
                return run
            if not logged:
                logger.info(
                    "run %s is executing in another process (%s); waiting for its outcome",
                    run.run_id,
                    run.owner,
                    extra={"action": "run_wait", "run_id": run.run_id},
                )
                logged = True
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)
            latest = await self.app.store.get_run(self.app.name, run.run_id)
            if latest is None:
                # Deleted under us (e.g. retention); claiming recreates it.
                return run
            run = latest

    async def _run_body(
        self,
        wf_fn: WorkflowFunction[Any, Any],
        claim: Claim,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        resumed: bool,
    ) -> Any:
        run = claim.run
        store = self.app.store
        ctx = RunContext.start(self.app, run.run_id, wf_fn.name, run.token, claim.steps)
        ctx.resumed = resumed
        execution = self._active.get(run.run_id)
        if execution is not None and execution.task is asyncio.current_task():
            execution.ctx = ctx
            ctx.parent = execution.parent_ctx
        logger.info(
            "%s run %s of workflow %s (attempt %d, %d recorded steps)",
            "resuming" if claim.steps or run.attempts > 1 else "starting",
            run.run_id,
            wf_fn.name,
            run.attempts,
            len(claim.steps),
            extra={"action": "run_start", "run_id": run.run_id},
        )
        ctx.cancel_requested = run.cancel_requested
        heartbeat = self._heartbeat_for()
        heartbeat.add(ctx)
        reset = current_run.set(ctx)
        # A workflow called from a task body is not inside that task's step.
        reset_step = current_step.set(None)
        try:
            try:
                if ctx.cancel_requested:
                    raise RunCancelledError(
                        f"run {run.run_id!r} of workflow {wf_fn.name!r} was cancelled"
                    )
                ctx.main_task = asyncio.current_task()
                try:
                    value = await self._call_body(ctx, wf_fn, run, args, kwargs)
                finally:
                    await _stop_stragglers(ctx)
                if ctx.lease_lost:
                    raise _Adopt
                what = f"workflow {wf_fn.name!r} (run {run.run_id!r})"
                output = _serde.encode(value, what=what, limit=self.app.max_value_bytes)
            except asyncio.CancelledError:
                # Stop renewing first: a renewal after the release would lease the
                # run again and keep the next caller out until the lease expires.
                heartbeat.discard(ctx)
                timed_out = _timed_out_ancestor(ctx)
                if timed_out is None:
                    await _shielded(store.release_run(self.app.name, run.run_id, ctx.token))
                else:
                    # A parent past its timeout never resumes this child: end it
                    # rather than leave it for recover() to finish for nothing.
                    stopped = RunCancelledError(
                        f"run {run.run_id!r} of workflow {wf_fn.name!r} was cancelled: its "
                        f"parent run {timed_out.run_id!r} timed out"
                    )
                    await _shielded(
                        store.finish_run(
                            self.app.name,
                            run.run_id,
                            ctx.token,
                            "cancelled",
                            error=_serde.encode_error(stopped),
                        )
                    )
                raise
            except _Adopt:
                raise
            except Exception as exc:
                if ctx.lease_lost or isinstance(exc, LeaseLostError):
                    raise _Adopt from exc
                status = "cancelled" if isinstance(exc, RunCancelledError) else "failed"
                await self._finish(ctx, status, error=_serde.encode_error(exc))
                logger.info(
                    "run %s %s: %r",
                    run.run_id,
                    status,
                    exc,
                    extra={"action": f"run_{status}", "run_id": run.run_id},
                )
                raise
            await self._finish(ctx, "completed", output=output)
            logger.info(
                "run %s completed",
                run.run_id,
                extra={"action": "run_completed", "run_id": run.run_id},
            )
            # Return the stored form, so a first run and a replay give equal values.
            return wf_fn.decode_output(output)
        finally:
            current_step.reset(reset_step)
            current_run.reset(reset)
            heartbeat.discard(ctx)

    async def _call_body(
        self,
        ctx: RunContext,
        wf_fn: WorkflowFunction[Any, Any],
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

    async def _finish(
        self, ctx: RunContext, status: Any, *, output: str | None = None, error: str | None = None
    ) -> None:
        try:
            await self.app.store.finish_run(
                self.app.name, ctx.run_id, ctx.token, status, output=output, error=error
            )
        except LeaseLostError as exc:
            raise _Adopt from exc

    async def cancel_unowned(self, run: RunRecord) -> None:
        """Finish a cancelled run that no live process executes, as ``cancelled``.

        Nobody would notice its cancel flag until a ``recover()`` ran it again.
        Claiming it is the test of ownership: the store hands over only a run
        whose owner released it, is provably dead, or whose lease expired.
        """
        if run.status != "running" or run.run_id in self._active:
            return
        steal_from = run.owner if run.owner is not None and owner_is_dead(run.owner) else None
        new = NewRun(self.app.name, run.run_id, run.workflow, run.inputs, run.parent_run_id)
        claim = await self.app.store.claim_run(
            new, owner=self.owner, lease_ttl=self.app.lease_ttl, steal_from=steal_from
        )
        if not claim.acquired:
            return  # a live owner: it stops at its next step boundary or heartbeat
        stopped = RunCancelledError(
            f"run {run.run_id!r} of workflow {run.workflow!r} was cancelled"
        )
        # Taken over meanwhile (LeaseLostError): its new owner sees the cancel flag.
        with contextlib.suppress(LeaseLostError):
            await self.app.store.finish_run(
                self.app.name,
                run.run_id,
                claim.run.token,
                "cancelled",
                error=_serde.encode_error(stopped),
            )

    def cancel_requested(self, run_id: str) -> None:
        """Tell the execution of ``run_id`` in this process, if any, that it was cancelled."""
        if self._heartbeat is not None:
            self._heartbeat.cancel_requested(run_id)

    def _heartbeat_for(self) -> Heartbeat:
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(self._renew, self.app.heartbeat)
        return self._heartbeat

    async def _renew(self, runs: list[RunContext]) -> dict[str, LeaseState]:
        return await self.app.store.renew_leases(
            self.app.name, [(ctx.run_id, ctx.token) for ctx in runs], self.app.lease_ttl
        )

    # -- steps -------------------------------------------------------------------------

    async def save_step(self, ctx: RunContext, record: StepRecord) -> StepRecord:
        try:
            saved = await self.app.store.save_step(self.app.name, ctx.run_id, ctx.token, record)
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

    async def run_child_step(
        self,
        parent: RunContext,
        step_id: str,
        position: int,
        wf_fn: WorkflowFunction[Any, Any],
        run_id: str,
        inputs: str,
    ) -> StepRecord:
        """Execute a child run and record its outcome as a step of the parent."""
        started = time.time()
        status: Any = "completed"
        result: str | None = None
        error: str | None = None
        try:
            # A resumed run resumes the children it calls: one that was cancelled
            # with it continues too.
            value = await self.execute(
                wf_fn, run_id, inputs, parent=parent.run_id, resume=parent.resumed
            )
            result = _serde.dumps(value)
        except RunCancelledError:
            # Stopped with this run: report this run's cancellation, not the child's.
            ensure_may_continue(parent)
            raise
        except LeaseLostError:
            raise
        except Exception as exc:
            status, error = "failed", _serde.encode_error(exc)
        record = StepRecord(
            step_id=step_id,
            position=position,
            task=wf_fn.name,
            status=status,
            result=result,
            error=error,
            attempts=1,
            started_at=started,
            finished_at=time.time(),
        )
        return await self.save_step(parent, record)

    # -- recovery ------------------------------------------------------------------------

    async def recover(self) -> list[str]:
        await self.ensure_open()
        runs = await self.app.store.list_runs(self.app.name, status="running", limit=1_000_000)
        now = time.time()
        pending: list[tuple[str, asyncio.Future[Any]]] = []
        for run in runs:
            orphaned = (
                run.owner is None
                or owner_is_dead(run.owner)
                or (run.lease_expires_at is not None and run.lease_expires_at <= now)
            )
            if not orphaned or run.run_id in self._active:
                continue
            wf_fn = self.app._workflows.get(run.workflow)
            if wf_fn is None:
                logger.warning(
                    "cannot recover run %s: workflow %r is not registered in this process",
                    run.run_id,
                    run.workflow,
                    extra={"action": "recover_skipped", "run_id": run.run_id},
                )
                continue
            coro = self.execute(wf_fn, run.run_id, run.inputs, parent=run.parent_run_id)
            pending.append((run.run_id, asyncio.ensure_future(coro)))
        for run_id, future in pending:
            try:
                await future
            except Exception as exc:
                logger.warning(
                    "recovered run %s ended with an error: %r",
                    run_id,
                    exc,
                    extra={"action": "recover_failed", "run_id": run_id},
                )
        return [run_id for run_id, _ in pending]


def _conflict(app: str, run_id: str, existing: str, requested: str) -> RunConflictError:
    return RunConflictError(
        f"app {app!r}: run id {run_id!r} belongs to workflow {existing!r}, so workflow "
        f"{requested!r} cannot use it; choose an id template that includes the workflow name"
    )


def _outcome(wf_fn: WorkflowFunction[Any, Any], run: RunRecord) -> Any:
    """The output of a finished run, or its error raised."""
    if run.status == "completed":
        return wf_fn.decode_output(run.output)
    if run.status == "cancelled":
        raise RunCancelledError(
            f"run {run.run_id!r} of workflow {run.workflow!r} is cancelled; "
            "resume it with `await wf.resume(run_id)`"
        )
    raise _failed_error(run)


def _failed_error(run: RunRecord) -> BaseException:
    if run.error is not None:
        rebuilt = _serde.rebuild_error(run.error)
        if rebuilt is not None:
            return rebuilt
        error_type, message = _serde.describe_error(run.error)
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


async def _shielded(coro: Any) -> None:
    """Finish a store write even though our task is being cancelled."""
    task = asyncio.ensure_future(coro)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.shield(task)
