"""A worker: claims queued runs, adopts orphaned ones, and stops gracefully.

A worker is a loop in the user's own process: no broker, no control plane.
The store is the coordinator: its atomic ``claim_queued`` hands each queued
run to one worker and enforces the queues' caps across all of them, and the
leases of running runs tell which ones lost their process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from durable.engine.lease import owner_is_dead
from durable.engine.parking import ParkPolicy
from durable.errors import ConfigurationError
from durable.worker.queues import DEFAULT_QUEUE
from durable.worker.wakeup import Wakeup

if TYPE_CHECKING:
    from durable.engine.executor import Executor
    from durable.engine.runtime import Runtime
    from durable.stores.base import Claim, RunRecord
    from durable.worker.queues import Queue
    from durable.worker.retention import Pruner
    from durable.worker.schedules import Scheduler

__all__ = ["DEFAULT_PARK_AFTER", "Worker", "park_seconds"]

# Waits longer than this park by default: long enough that a quick
# request-and-reply signal or a short pause never pays for a replay, short
# enough that waits of minutes to days leave memory.
DEFAULT_PARK_AFTER = 30.0

logger = logging.getLogger("durable.worker")

# After a failed pass (the store is unreachable, say), wait this long, doubling.
_RETRY_MIN = 0.1
_RETRY_MAX = 5.0
# How many running runs a recovery pass looks at.
_RECOVERY_BATCH = 1000


class Worker:
    """Serves some queues of one app in this process until stopped."""

    def __init__(
        self,
        runtime: Runtime,
        executor: Executor,
        queues: Sequence[Queue],
        *,
        concurrency: int,
        wakeup: Wakeup,
        poll_interval: float,
        recover_interval: float,
        grace: float,
        park_after: float,
        scheduler: Scheduler | None = None,
        pruner: Pruner | None = None,
    ) -> None:
        self.runtime = runtime
        self.executor = executor
        self.queues = list(queues)
        self.concurrency = concurrency
        self.wakeup = wakeup
        self.poll_interval = poll_interval
        self.recover_interval = recover_interval
        self.grace = grace
        self.scheduler = scheduler
        self.pruner = pruner
        # Runs without a queue of their own (adopted ones) park in one this
        # worker serves, so that workers like it wake them.
        names = [q.name for q in self.queues]
        home = DEFAULT_QUEUE if DEFAULT_QUEUE in names or not names else names[0]
        self.park = ParkPolicy(park_after, home, on_park=wakeup.notify_at)
        self.stopping = False
        # run id -> (its task, the queue it was claimed from; None when adopted)
        self._running: dict[str, tuple[asyncio.Task[Any], str | None]] = {}
        self._unknown_logged: set[str] = set()
        # A finish elsewhere frees a slot this worker could use only in these.
        self._capped = [q.name for q in self.queues if q.concurrency is not None]
        self._turn = 0

    def stop(self) -> None:
        """Stop claiming; in-flight runs get ``grace`` seconds to finish."""
        self.stopping = True
        self.wakeup.notify()

    async def run(self) -> None:
        """Serve until :meth:`stop` or cancellation; then hand back what still runs."""
        await self.executor.ensure_open()
        names = ", ".join(q.name for q in self.queues)
        logger.info(
            "worker %s serving app %r, queues: %s",
            self.executor.owner,
            self.runtime.app,
            names,
            extra={"action": "worker_started"},
        )
        # Pruning runs beside the claim loop: a long prune never delays a claim.
        pruning = None if self.pruner is None else asyncio.create_task(self.pruner.run())
        try:
            await self._serve()
        finally:
            if pruning is not None:
                pruning.cancel()
                await asyncio.wait([pruning])
            await self._drain()

    async def _serve(self) -> None:
        next_recovery = 0.0
        retry = _RETRY_MIN
        while not self.stopping:
            _raise_if_cancelled()
            try:
                if time.monotonic() >= next_recovery:
                    await self._recover()
                    next_recovery = time.monotonic() + self.recover_interval
                if self.scheduler is not None:
                    await self.scheduler.run_due()
                await self._claim()
                retry = _RETRY_MIN
            except Exception as exc:
                logger.warning(
                    "worker pass failed, retrying in %.1fs: %r",
                    retry,
                    exc,
                    extra={"action": "worker_retry"},
                )
                await asyncio.sleep(retry)
                retry = min(retry * 2, _RETRY_MAX)
                continue
            if self.stopping:
                break
            await self._idle(self._idle_time())

    async def _idle(self, seconds: float) -> None:
        """Until this process has new work, the store tells of some, or ``seconds`` (jittered).

        Both waits are tasks awaited with asyncio.wait, and the one still
        pending is cancelled and awaited: a cancellation of the worker
        reaches it at once and is never swallowed (no asyncio.wait_for).
        """
        if self.wakeup.take():
            return
        local = asyncio.ensure_future(self.wakeup.wait(seconds))
        # The jittered local timer ends the idle period; the store's wait
        # only has to outlast it.
        remote = asyncio.ensure_future(self._store_wait(seconds * 1.5))
        waits = (local, remote)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.wait(waits)

    async def _store_wait(self, seconds: float) -> None:
        """The store's wait_for_work, which never ends the worker: a failure waits it out."""
        try:
            await self.runtime.store.wait_for_work(self.runtime.app, seconds, queues=self._capped)
        except Exception as exc:
            logger.debug("waiting for work on the store failed: %r", exc)
            await asyncio.sleep(seconds)

    def _idle_time(self) -> float:
        """How long to wait for work: the poll interval, or less when a tick is near."""
        if self.scheduler is None:
            return self.poll_interval
        to_tick = self.scheduler.seconds_to_next()
        if to_tick is None:
            return self.poll_interval
        # The wait is jittered by up to +25%: aim a little early.
        return max(0.001, min(self.poll_interval, to_tick * 0.8 + 0.001))

    # -- queued runs ---------------------------------------------------------------------

    def _free(self) -> int:
        return self.concurrency - len(self._running)

    async def _claim(self) -> None:
        """Start as many queued runs as the free slots and the queues' caps allow."""
        queues = self.queues[self._turn :] + self.queues[: self._turn]
        self._turn = (self._turn + 1) % len(self.queues)
        store, runtime = self.runtime.store, self.runtime
        for queue in queues:
            room = self._free()
            if queue.worker_concurrency is not None:
                mine = sum(1 for _, name in self._running.values() if name == queue.name)
                room = min(room, queue.worker_concurrency - mine)
            if room <= 0 or self.stopping:
                continue
            claims = await store.claim_queued(
                runtime.app,
                [queue.limits],
                owner=self.executor.owner,
                lease_ttl=runtime.lease_ttl,
                limit=room,
            )
            for claim in claims:
                await self._launch(claim, queue.name)

    async def _launch(self, claim: Claim, queue: str | None) -> None:
        run = claim.run
        wf_fn = self.runtime.workflows.get(run.workflow)
        if wf_fn is None:
            self._log_unknown(run)
            # Hand it back at once: a worker that knows the workflow adopts it.
            await self.runtime.store.release_run(self.runtime.app, run.run_id, run.token)
            return
        task = self.executor.launch(wf_fn, claim, adopted=queue is None, park=self.park)
        self._running[run.run_id] = (task, queue)
        task.add_done_callback(lambda _: self._finished(run.run_id, task))

    def _finished(self, run_id: str, task: asyncio.Task[Any]) -> None:
        entry = self._running.get(run_id)
        if entry is not None and entry[0] is task:
            del self._running[run_id]
        self.wakeup.notify()  # a slot is free

    def _log_unknown(self, run: RunRecord) -> None:
        if run.workflow not in self._unknown_logged:
            self._unknown_logged.add(run.workflow)
            logger.warning(
                "run %s: workflow %r is not registered in this worker; leaving its runs "
                "to a worker that knows it",
                run.run_id,
                run.workflow,
                extra={"action": "worker_unknown_workflow", "run_id": run.run_id},
            )

    # -- orphaned runs -------------------------------------------------------------------

    async def _recover(self) -> None:
        """Adopt running runs whose owner is dead or whose lease expired."""
        runtime = self.runtime
        running = await runtime.store.list_runs(
            runtime.app, status="running", limit=_RECOVERY_BATCH
        )
        now = time.time()
        for run in running:
            if self._free() <= 0 or self.stopping:
                return
            if run.run_id in self._running or self.executor.is_active(run.run_id):
                continue
            dead = run.owner is not None and owner_is_dead(run.owner)
            expired = run.lease_expires_at is not None and run.lease_expires_at <= now
            if not (run.owner is None or dead or expired):
                continue
            if run.workflow not in runtime.workflows:
                self._log_unknown(run)
                continue
            claim = await self.executor.adopt(run, steal=dead)
            if claim is not None:
                logger.info(
                    "adopted run %s of workflow %r (its owner %s is gone)",
                    run.run_id,
                    run.workflow,
                    run.owner,
                    extra={"action": "run_adopted", "run_id": run.run_id},
                )
                await self._launch(claim, None)

    # -- stopping ------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Park the runs in durable waits, let the others finish within the grace period.

        What is still running after ``grace`` is released.
        """
        self.park.now = True
        self.runtime.waits.park_now(self.park)
        pending = [task for task, _ in self._running.values() if not task.done()]
        if not pending:
            return
        logger.info(
            "worker stopping: waiting up to %.1fs for %d run(s)",
            self.grace,
            len(pending),
            extra={"action": "worker_draining"},
        )
        _, still = await asyncio.wait(pending, timeout=self.grace)
        for task in still:
            # A cancelled execution releases its lease: another worker takes
            # the run at once and replays its completed steps.
            task.cancel()
        if still:
            await asyncio.wait(still)


def park_seconds(value: object) -> float:
    """``park_after`` as a float of seconds >= 0, or ConfigurationError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"park_after must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _raise_if_cancelled() -> None:
    """Honour a cancellation a driver swallowed (asyncio.wait_for before Python 3.12 can)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
