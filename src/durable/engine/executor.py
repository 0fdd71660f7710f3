"""Executing runs: claim, wait for another owner, run the body, adopt a winner's outcome.

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
import contextvars
import enum
import functools
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from durable.engine import body, serde
from durable.engine.context import RunContext, current_run
from durable.engine.lease import Heartbeat, new_owner_id, owner_is_dead
from durable.engine.steps import ensure_may_continue, new_record, save
from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    RunCancelledError,
    RunConflictError,
)
from durable.stores.base import Claim, LeaseState, NewRun, RunRecord, StepRecord, StepStatus

if TYPE_CHECKING:
    from durable.engine.parking import ParkPolicy
    from durable.engine.runtime import Runtime
    from durable.engine.specs import WorkflowSpec

logger = logging.getLogger("durable.run")

# How often a caller polls a run that another live process executes.
_POLL_MIN = 0.02
_POLL_MAX = 1.0


class _Phase(enum.Enum):
    """Where the drive of one run stands."""

    CLAIM = "claim"  # create, restart or take over the run; run its body if acquired
    AWAIT_OWNER = "await_owner"  # another live process executes it: wait for its outcome
    ADOPT = "adopt"  # this execution lost the run: never re-run it, take the winner's outcome
    TAKE_OVER = "take_over"  # its owner looks gone: claim it again
    RAN = "ran"  # this process ran the body: answer with its output
    PARKED = "parked"  # the body parked the run in the store: a worker resumes it later
    DONE = "done"  # the run has finished elsewhere or before: answer with its stored outcome


class _Drive:
    """The state of one drive: the request, and what the last phase learned."""

    # A plain slotted class: a dataclass would cost import time for no gain.
    __slots__ = (
        "adopting",
        "claim",
        "new",
        "output",
        "park",
        "resume",
        "run",
        "steal_from",
        "takeover_tried",
    )

    def __init__(
        self,
        new: NewRun,
        resume: bool,
        claim: Claim | None,
        adopting: bool,
        park: ParkPolicy | None = None,
    ) -> None:
        self.new = new
        # Long waits park the run (launched by a worker); None: they wait here.
        self.park = park
        self.resume = resume
        # Driven to take over a run whose owner is gone (recovery, a worker).
        self.adopting = adopting
        # A claim acquired before the drive began (start(), a worker): used first.
        self.claim = claim
        self.run: RunRecord | None = None
        self.steal_from: str | None = None
        self.takeover_tried = False
        self.output: Any = None


class _Execution:
    __slots__ = (
        "abandoned",
        "background",
        "ctx",
        "inputs",
        "parent_ctx",
        "task",
        "waiters",
        "workflow",
    )

    def __init__(self, workflow: str, inputs: str, task: asyncio.Task[Any]) -> None:
        self.workflow = workflow
        self.inputs = inputs
        self.task = task
        self.waiters = 0
        # Launched in the background: a waiter giving up never stops it.
        self.background = False
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

    def started(self, ctx: RunContext) -> None:
        self.ctx = ctx
        ctx.parent = self.parent_ctx


class Executor:
    """Executes the runs of one app in this process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.owner = new_owner_id()
        self._active: dict[str, _Execution] = {}
        self._open_lock: asyncio.Lock | None = None
        self._opened = False
        self._heartbeat: Heartbeat | None = None
        # The event loop the app serves; another may take over once it stopped.
        self._loop: asyncio.AbstractEventLoop | None = None

    def is_active(self, run_id: str) -> bool:
        """True while this process executes (or awaits) the run ``run_id``."""
        return run_id in self._active

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
                await self.runtime.store.open()
                self._opened = True

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = self._loop
        if previous is not None and previous.is_running() and not previous.is_closed():
            # Its store, heartbeat and waits belong to that loop: sharing them
            # between two running loops (two threads) would corrupt them.
            raise ConfigurationError(
                f"Workflow {self.runtime.app!r} is in use by an event loop running in another "
                "thread; a Workflow serves one event loop at a time. Create one Workflow "
                "(with its own store) per thread, or run all workflows on one event loop"
            )
        self._loop = loop
        # The heartbeat of a stopped loop never beats again, and the runs it
        # renewed do not advance: their leases must expire, not be renewed here.
        self._heartbeat = None
        self._open_lock = None

    def detach_store(self) -> None:
        """Forget the store's open state, before the runtime gets another store.

        Raises ConfigurationError while runs execute here: they hold the old one.
        """
        if self._active:
            raise ConfigurationError(
                f"Workflow {self.runtime.app!r} cannot change its store while runs execute: "
                f"{sorted(self._active)[:5]}"
            )
        self._opened = False
        self._heartbeat = None

    async def close(self) -> None:
        self._opened = False
        if self._heartbeat is not None:
            # A renewal after close would silently reopen the store.
            await self._heartbeat.stop()
        await self.runtime.store.close()

    # -- entry -----------------------------------------------------------------------

    async def execute(
        self,
        wf_fn: WorkflowSpec,
        run_id: str,
        inputs: str,
        *,
        parent: str | None,
        resume: bool = False,
        adopting: bool = False,
    ) -> Any:
        """Run, resume or await the run ``run_id``; its output or its error.

        ``adopting``: the run is known orphaned (recovery), so acquiring it is
        a takeover.
        """
        await self.ensure_open()
        while True:
            execution = self._joined(wf_fn, run_id, inputs, parent, resume, adopting)
            if parent is not None:
                caller = current_run.get()
                if caller is not None and caller.run_id == parent:
                    execution.link_parent(caller)
            execution.waiters += 1
            try:
                output = await asyncio.shield(execution.task)
                if output is body.PARKED:
                    # Parked by its worker meanwhile: wait for the outcome.
                    continue
                return output
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # Our caller gave up. Stop the execution unless others await it.
                    if execution.waiters == 1 and not execution.background:
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

    # -- executing in the background ---------------------------------------------------

    async def start(self, wf_fn: WorkflowSpec, run_id: str, inputs: str) -> RunRecord:
        """Record the run durably and execute it here in the background; the stored run.

        A run already executing here, finished, or owned by a live process
        elsewhere is left as it is (its record is returned); a failed run is
        restarted, as calling it would.
        """
        await self.ensure_open()
        execution = self._active.get(run_id)
        if execution is not None:
            self._check_same(execution, wf_fn, run_id, inputs)
        else:
            new = NewRun(
                self.runtime.app,
                run_id,
                wf_fn.name,
                inputs,
                trace_context=self.runtime.trace_context(),
            )
            claim = await self._claimed(wf_fn, new)
            if claim.acquired:
                self.launch(wf_fn, claim)
                return claim.run
        run = await self.runtime.store.get_run(self.runtime.app, run_id)
        if run is None:
            raise LeaseLostError(f"run {run_id!r} disappeared from the store")
        return run

    async def _claimed(self, wf_fn: WorkflowSpec, new: NewRun) -> Claim:
        """Claim ``new``; RunConflictError (nothing kept) for another workflow or inputs."""
        runtime = self.runtime
        claim = await runtime.store.claim_run(new, owner=self.owner, lease_ttl=runtime.lease_ttl)
        run = claim.run
        if run.workflow != wf_fn.name:
            raise workflow_conflict(runtime.app, run.run_id, run.workflow, wf_fn.name)
        if not same_inputs(run.inputs, new.inputs):
            if claim.acquired:  # a store that does not compare inputs
                await runtime.store.release_run(runtime.app, run.run_id, run.token)
            raise inputs_conflict(runtime.app, run.run_id, wf_fn.name, run.inputs, new.inputs)
        return claim

    def launch(
        self,
        wf_fn: WorkflowSpec,
        claim: Claim,
        *,
        adopted: bool = False,
        park: ParkPolicy | None = None,
    ) -> asyncio.Task[Any]:
        """Execute the acquired ``claim`` in the background; the task driving it.

        ``adopted``: the claim took the run over from an owner that is gone.

        The run's outcome is recorded in the store; the task's own result is
        retrieved here, so an unawaited failed run logs no "exception was never
        retrieved" warning. With ``park``, its long waits park it: the task
        then ends with :data:`~durable.engine.body.PARKED`.
        """
        run = claim.run
        execution = self._active.get(run.run_id)
        if execution is None:
            # A clean context: the caller's run (a task calling start()) is not
            # this run's parent.
            execution = self._launched(wf_fn, run, claim, contextvars.Context(), adopted, park)
        execution.background = True
        execution.task.add_done_callback(_retrieve)
        return execution.task

    def _launched(
        self,
        wf_fn: WorkflowSpec,
        run: RunRecord,
        claim: Claim,
        context: contextvars.Context,
        adopted: bool,
        park: ParkPolicy | None,
    ) -> _Execution:
        new = NewRun(
            self.runtime.app,
            run.run_id,
            wf_fn.name,
            run.inputs,
            run.parent_run_id,
            trace_context=run.trace_context,
        )
        task = asyncio.get_running_loop().create_task(
            self._drive(wf_fn, new, resume=False, claim=claim, adopting=adopted, park=park),
            name=f"durable-run:{run.run_id}",
            context=context,
        )
        execution = _Execution(wf_fn.name, run.inputs, task)
        self._active[run.run_id] = execution
        task.add_done_callback(functools.partial(self._forget, run.run_id, execution))
        return execution

    async def adopt(self, run: RunRecord, *, steal: bool) -> Claim | None:
        """Claim an orphaned running run (``steal``: its owner is provably dead); None if lost.

        The store hands it over only when its lease expired or its owner is
        the one named: a live owner keeps it.
        """
        new = NewRun(self.runtime.app, run.run_id, run.workflow, run.inputs, run.parent_run_id)
        claim = await self.runtime.store.claim_run(
            new,
            owner=self.owner,
            lease_ttl=self.runtime.lease_ttl,
            steal_from=run.owner if steal else None,
        )
        return claim if claim.acquired else None

    def task_of(self, run_id: str) -> asyncio.Task[Any] | None:
        """The task executing ``run_id`` in this process, if any."""
        execution = self._active.get(run_id)
        return None if execution is None else execution.task

    @property
    def active_runs(self) -> int:
        """How many runs execute (or are awaited) in this process."""
        return len(self._active)

    def check_existing(self, wf_fn: WorkflowSpec, run: RunRecord, inputs: str) -> None:
        """RunConflictError if the stored ``run`` is another workflow's or has other inputs."""
        if run.workflow != wf_fn.name:
            raise workflow_conflict(self.runtime.app, run.run_id, run.workflow, wf_fn.name)
        if not same_inputs(run.inputs, inputs):
            raise inputs_conflict(self.runtime.app, run.run_id, wf_fn.name, run.inputs, inputs)

    def _check_same(
        self, execution: _Execution, wf_fn: WorkflowSpec, run_id: str, inputs: str
    ) -> None:
        if execution.workflow != wf_fn.name:
            raise workflow_conflict(self.runtime.app, run_id, execution.workflow, wf_fn.name)
        if not same_inputs(execution.inputs, inputs):
            raise inputs_conflict(self.runtime.app, run_id, wf_fn.name, execution.inputs, inputs)

    def _joined(
        self,
        wf_fn: WorkflowSpec,
        run_id: str,
        inputs: str,
        parent: str | None,
        resume: bool,
        adopting: bool,
    ) -> _Execution:
        """The execution of ``run_id`` in this process, started if there is none."""
        execution = self._active.get(run_id)
        if execution is not None and execution.task.done():
            # Ended (cancelled, or parked), but its done-callback has not run
            # yet: awaiting it again would answer at once and spin the caller.
            self._forget(run_id, execution, None)
            execution = None
        if execution is None:
            new = NewRun(
                self.runtime.app,
                run_id,
                wf_fn.name,
                inputs,
                parent,
                trace_context=self.runtime.trace_context(),
            )
            task = asyncio.get_running_loop().create_task(
                self._drive(wf_fn, new, resume=resume, adopting=adopting),
                name=f"durable-run:{run_id}",
            )
            execution = _Execution(wf_fn.name, inputs, task)
            self._active[run_id] = execution
            task.add_done_callback(functools.partial(self._forget, run_id, execution))
        else:
            self._check_same(execution, wf_fn, run_id, inputs)
        return execution

    def _forget(self, run_id: str, execution: _Execution, _: object) -> None:
        if self._active.get(run_id) is execution:
            del self._active[run_id]

    # -- driving one run to its outcome ----------------------------------------------

    async def _drive(
        self,
        wf_fn: WorkflowSpec,
        new: NewRun,
        *,
        resume: bool,
        claim: Claim | None = None,
        adopting: bool = False,
        park: ParkPolicy | None = None,
    ) -> Any:
        drive = _Drive(new, resume, claim, adopting, park)
        phase = _Phase.CLAIM
        while True:
            if phase is _Phase.CLAIM:
                phase = await self._claim(wf_fn, drive)
            elif phase is _Phase.AWAIT_OWNER:
                phase = await self._await_owner(drive, backoff_first=drive.takeover_tried)
            elif phase is _Phase.ADOPT:
                latest = await self.runtime.store.get_run(self.runtime.app, new.run_id)
                if latest is None:
                    raise LeaseLostError(f"run {new.run_id!r} disappeared from the store")
                drive.run = latest
                phase = await self._await_owner(drive, backoff_first=False)
            elif phase is _Phase.TAKE_OVER:
                # Only a provably gone owner is named; an expiry judged by our
                # clock is left to the store's clock, or a client whose clock
                # runs ahead would take the run from a live owner.
                owner = drive.run.owner if drive.run is not None else None
                drive.steal_from = owner if self._owner_gone(owner) else None
                drive.takeover_tried = True
                phase = _Phase.CLAIM
            elif phase is _Phase.RAN:
                return drive.output
            elif phase is _Phase.PARKED:
                return body.PARKED
            else:
                assert drive.run is not None
                return body.outcome(wf_fn, drive.run)

    async def _claim(self, wf_fn: WorkflowSpec, drive: _Drive) -> _Phase:
        """Claim the run and run its body if acquired; the next phase."""
        new = drive.new
        runtime = self.runtime
        claim, drive.claim = drive.claim, None
        if claim is None:
            claim = await runtime.store.claim_run(
                new,
                owner=self.owner,
                lease_ttl=runtime.lease_ttl,
                steal_from=drive.steal_from,
                resume=drive.resume,
            )
        run = claim.run
        if run.workflow != wf_fn.name:
            raise workflow_conflict(runtime.app, run.run_id, run.workflow, wf_fn.name)
        if run.inputs != new.inputs:
            if not same_inputs(run.inputs, new.inputs):
                if claim.acquired:  # a store that does not compare inputs
                    await runtime.store.release_run(runtime.app, run.run_id, run.token)
                raise inputs_conflict(runtime.app, run.run_id, wf_fn.name, run.inputs, new.inputs)
            # The same arguments, written another way (by an earlier version,
            # say): the store compares text, so ask again with its own.
            drive.new = replace(new, inputs=run.inputs)
            if not claim.acquired and run.status != "running":
                return _Phase.CLAIM
        if claim.acquired:
            output = await body.run_claimed(
                runtime,
                self._heartbeat_for(),
                wf_fn,
                claim,
                resumed=drive.resume,
                parent=None,
                on_start=self._started_here,
                takeover=self._took_over(drive),
                park=drive.park,
            )
            if output is body.LOST:
                return _Phase.ADOPT
            if output is body.PARKED:
                return _Phase.PARKED
            drive.output = output
            return _Phase.RAN
        drive.run = run
        # A parked run is awaited like one executing elsewhere: a worker wakes it.
        waiting = run.status in ("running", "waiting")
        return _Phase.AWAIT_OWNER if waiting else _Phase.DONE

    def _took_over(self, drive: _Drive) -> bool:
        """True when the claim just acquired took the run from another owner."""
        if drive.adopting:
            return True
        # A run released by its owner (owner None), or ours before, is not taken.
        previous = drive.run.owner if drive.takeover_tried and drive.run is not None else None
        return previous is not None and previous != self.owner

    def _started_here(self, ctx: RunContext) -> None:
        execution = self._active.get(ctx.run_id)
        if execution is not None and execution.task is asyncio.current_task():
            execution.started(ctx)

    def _owner_gone(self, owner: str | None) -> bool:
        """True when ``owner`` can never write again: dead, or an earlier execution here."""
        return owner is not None and (owner == self.owner or owner_is_dead(owner))

    async def _await_owner(self, drive: _Drive, *, backoff_first: bool) -> _Phase:
        """Wait until the run finishes or may be taken over; TAKE_OVER or DONE."""
        assert drive.run is not None
        run = await self._await_other_owner(drive.run, backoff_first=backoff_first)
        drive.run = run
        return _Phase.TAKE_OVER if run.status == "running" else _Phase.DONE

    async def _await_other_owner(self, run: RunRecord, *, backoff_first: bool) -> RunRecord:
        """Wait until the run finishes or may be taken over; the latest record.

        A returned ``running`` record means: claim it now (its owner is dead,
        gone from this process, or its lease looks expired).
        """
        store, app = self.runtime.store, self.runtime.app
        delay = _POLL_MIN
        logged = False
        if backoff_first:
            # A takeover just failed (the store's clock disagrees with ours):
            # look again later rather than spin.
            await asyncio.sleep(delay)
            run = await store.get_run(app, run.run_id) or run
        while run.status == "waiting" or (run.status == "running" and not self._may_take_over(run)):
            if not logged:
                logger.info(
                    "run %s is %s; waiting for its outcome",
                    run.run_id,
                    "parked until a worker wakes it"
                    if run.status == "waiting"
                    else f"executing in another process ({run.owner})",
                    extra={"action": "run_wait", "run_id": run.run_id},
                )
                logged = True
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)
            latest = await store.get_run(app, run.run_id)
            if latest is None:
                return run  # deleted under us (e.g. retention); claiming recreates it
            run = latest
        return run

    def _may_take_over(self, run: RunRecord) -> bool:
        if run.owner is None or run.owner == self.owner or owner_is_dead(run.owner):
            return True
        return run.lease_expires_at is not None and run.lease_expires_at <= time.time()

    # -- child runs ----------------------------------------------------------------------

    async def run_child(
        self,
        parent: RunContext,
        step_id: str,
        position: int,
        wf_fn: WorkflowSpec,
        run_id: str,
        inputs: str,
    ) -> StepRecord:
        """Execute a child run and record its outcome as a step of the parent."""
        ancestor: RunContext | None = parent
        while ancestor is not None:
            if ancestor.run_id == run_id:
                # It would wait for its own outcome forever.
                raise RunConflictError(
                    f"workflow {wf_fn.name!r} called from run {parent.run_id!r} resolves "
                    f"to run id {run_id!r}, which is that run or one of its parents; "
                    "give the child a run id of its own (id=... or .run(run_id, ...))"
                )
            ancestor = ancestor.parent
        branch = parent.branch_started()
        try:
            return await self._child_step(parent, step_id, position, wf_fn, run_id, inputs)
        finally:
            if branch is not None:
                parent.in_flight.discard(branch)

    async def _child_step(
        self,
        parent: RunContext,
        step_id: str,
        position: int,
        wf_fn: WorkflowSpec,
        run_id: str,
        inputs: str,
    ) -> StepRecord:
        started = time.time()
        status: StepStatus = "completed"
        result: str | None = None
        error: str | None = None
        try:
            # A resumed run resumes the children it calls: one that was cancelled
            # with it continues too.
            value = await self.execute(
                wf_fn, run_id, inputs, parent=parent.run_id, resume=parent.resumed
            )
            result = serde.dumps(value)
        except RunCancelledError:
            # Stopped with this run: report this run's cancellation, not the child's.
            ensure_may_continue(parent)
            raise
        except LeaseLostError:
            raise
        except Exception as exc:
            status, error = "failed", serde.encode_error(exc)
        record = new_record(
            step_id, position, wf_fn.name, status, result=result, error=error, started_at=started
        )
        return await save(parent, record)

    # -- cancelling ----------------------------------------------------------------------

    async def cancel_unowned(self, run: RunRecord) -> None:
        """Finish a cancelled run that no live process executes, as ``cancelled``.

        Nobody would notice its cancel flag until a ``recover()`` ran it again.
        Claiming it is the test of ownership: the store hands over only a run
        whose owner released it, is provably dead, or whose lease expired.
        """
        if run.status != "running" or run.run_id in self._active:
            return
        runtime = self.runtime
        steal_from = run.owner if run.owner is not None and owner_is_dead(run.owner) else None
        new = NewRun(runtime.app, run.run_id, run.workflow, run.inputs, run.parent_run_id)
        claim = await runtime.store.claim_run(
            new, owner=self.owner, lease_ttl=runtime.lease_ttl, steal_from=steal_from
        )
        if not claim.acquired:
            return  # a live owner: it stops at its next step boundary or heartbeat
        stopped = RunCancelledError(
            f"run {run.run_id!r} of workflow {run.workflow!r} was cancelled"
        )
        # Taken over meanwhile (LeaseLostError): its new owner sees the cancel flag.
        with contextlib.suppress(LeaseLostError):
            await runtime.store.finish_run(
                runtime.app,
                run.run_id,
                claim.run.token,
                "cancelled",
                error=serde.encode_error(stopped),
            )

    def cancel_requested(self, run_id: str) -> None:
        """Tell the execution of ``run_id`` in this process, if any, that it was cancelled."""
        if self._heartbeat is not None:
            self._heartbeat.cancel_requested(run_id)

    # -- leases --------------------------------------------------------------------------

    def _heartbeat_for(self) -> Heartbeat:
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(self._renew, self.runtime.heartbeat)
        return self._heartbeat

    async def _renew(self, runs: list[RunContext]) -> dict[str, LeaseState]:
        runtime = self.runtime
        return await runtime.store.renew_leases(
            runtime.app, [(ctx.run_id, ctx.token) for ctx in runs], runtime.lease_ttl
        )

    # -- recovery ------------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Resume every run of the app whose owner died, concurrently; their run ids."""
        await self.ensure_open()
        runtime = self.runtime
        runs = await runtime.store.list_runs(runtime.app, status="running", limit=1_000_000)
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
            wf_fn = runtime.workflows.get(run.workflow)
            if wf_fn is None:
                logger.warning(
                    "cannot recover run %s: workflow %r is not registered in this process",
                    run.run_id,
                    run.workflow,
                    extra={"action": "recover_skipped", "run_id": run.run_id},
                )
                continue
            coro = self.execute(
                wf_fn, run.run_id, run.inputs, parent=run.parent_run_id, adopting=True
            )
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


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background run's error as seen: its outcome is in the store."""
    if not task.cancelled():
        task.exception()


def workflow_conflict(app: str, run_id: str, existing: str, requested: str) -> RunConflictError:
    return RunConflictError(
        f"app {app!r}: run id {run_id!r} belongs to workflow {existing!r}, so workflow "
        f"{requested!r} cannot use it; choose an id template that includes the workflow name"
    )


def inputs_conflict(
    app: str, run_id: str, workflow: str, stored: str, requested: str
) -> RunConflictError:
    """The error for a run id called again with arguments other than its stored ones."""
    differing = _differing_parameters(stored, requested)
    named = ", ".join(repr(name) for name in differing) if differing else "its arguments"
    return RunConflictError(
        f"app {app!r}: run {run_id!r} of workflow {workflow!r} was created with other "
        f"arguments (differing: {named}); a run id always means the same inputs. Use a "
        "new run id for new arguments, or call it with the stored ones "
        "(`await wf.resume(run_id)` continues it with them)"
    )


def same_inputs(stored: str, requested: str) -> bool:
    """True when two encoded argument sets hold the same values, however written."""
    if stored == requested:
        return True
    try:
        return _canonical(stored) == _canonical(requested)
    except ValueError:
        return False


def _canonical(inputs: str) -> str:
    import json

    return json.dumps(json.loads(inputs), sort_keys=True, separators=(",", ":"))


def _differing_parameters(stored: str, requested: str) -> list[str]:
    try:
        old, new = serde.loads(stored), serde.loads(requested)
    except ValueError:
        return []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    names = list(dict.fromkeys([*old, *new]))
    return [name for name in names if old.get(name, _MISSING) != new.get(name, _MISSING)]


_MISSING = object()
