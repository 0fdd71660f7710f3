"""InMemoryStore: the Store contract in a dict, for users' tests.

Nothing survives the process, so it offers no crash recovery. Values are kept
as the same JSON text the durable stores keep, so a workflow tested against it
sees exactly the round trip it will see in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Sequence

from durable.errors import LeaseLostError
from durable.stores._checks import (
    check_claim,
    check_enqueue,
    check_json,
    check_names,
    check_signal,
    check_step,
)
from durable.stores._claims import ClaimRequest, decide_claim
from durable.stores._listing import ListQuery, decide_requeue, listing_key, requeued_record
from durable.stores._queues import queue_room, queued_record
from durable.stores._retention import check_prune, not_finished
from durable.stores._wake import WorkWaiters, signal_topic, slot_topic
from durable.stores.base import (
    FINAL_STATUSES,
    Claim,
    FinalStatus,
    LeaseState,
    NewRun,
    QueueCounts,
    QueueLimits,
    RunRecord,
    RunStatus,
    SavedStep,
    StepRecord,
    Store,
    check_signal_keys,
)

_RunKey = tuple[str, str]


class InMemoryStore(Store):
    """A Store held in process memory. Not durable; for tests and experiments."""

    def __init__(self) -> None:
        self._runs: dict[_RunKey, RunRecord] = {}
        self._steps: dict[_RunKey, dict[str, StepRecord]] = {}
        self._signals: dict[tuple[str, str, str], list[str]] = {}
        # Enqueue order of queued runs, for FIFO within a priority.
        self._sequence = itertools.count()
        self._enqueued: dict[_RunKey, int] = {}
        # The wait_for_work calls of the event loop last used: woken in-process.
        self._work: WorkWaiters | None = None

    def _now(self) -> float:
        return time.time()

    def _ordered_steps(self, key: _RunKey) -> tuple[StepRecord, ...]:
        return tuple(sorted(self._steps.get(key, {}).values(), key=lambda s: s.position))

    async def claim_run(
        self,
        new: NewRun,
        *,
        owner: str,
        lease_ttl: float,
        steal_from: str | None = None,
        resume: bool = False,
    ) -> Claim:
        check_claim(new, owner, steal_from)
        key = (new.app, new.run_id)
        request = ClaimRequest(new, owner, lease_ttl, steal_from, resume)
        decision = decide_claim(self._runs.get(key), request, self._now())
        if not decision.acquired:
            return Claim(decision.run, self._ordered_steps(key), acquired=False)
        steps = self._steps.setdefault(key, {})
        if decision.drops_failed_steps:
            for step_id in [s.step_id for s in steps.values() if s.status == "failed"]:
                del steps[step_id]
        self._runs[key] = decision.run
        return Claim(decision.run, self._ordered_steps(key), acquired=True)

    def _owned(self, app: str, run_id: str, token: int) -> RunRecord:
        run = self._runs.get((app, run_id))
        if run is None or run.status != "running" or run.token != token:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        return run

    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        check_step(step)
        run = self._owned(app, run_id, token)
        steps = self._steps.setdefault((app, run_id), {})
        stored = steps.setdefault(step.step_id, step)
        return SavedStep(stored, run.cancel_requested)

    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        try:
            run = self._owned(app, run_id, token)
        except LeaseLostError:
            return LeaseState.LOST
        now = self._now()
        self._runs[(app, run_id)] = dataclasses.replace(
            run, lease_expires_at=now + lease_ttl, updated_at=now
        )
        return LeaseState.CANCEL_REQUESTED if run.cancel_requested else LeaseState.OWNED

    async def renew_leases(
        self, app: str, leases: Sequence[tuple[str, int]], lease_ttl: float
    ) -> dict[str, LeaseState]:
        now = self._now()
        states: dict[str, LeaseState] = {}
        for run_id, token in leases:
            run = self._runs.get((app, run_id))
            if run is None or run.status != "running" or run.token != token:
                states[run_id] = LeaseState.LOST
                continue
            self._runs[(app, run_id)] = dataclasses.replace(
                run, lease_expires_at=now + lease_ttl, updated_at=now
            )
            cancel = run.cancel_requested
            states[run_id] = LeaseState.CANCEL_REQUESTED if cancel else LeaseState.OWNED
        return states

    async def release_run(self, app: str, run_id: str, token: int) -> None:
        try:
            run = self._owned(app, run_id, token)
        except LeaseLostError:
            return
        now = self._now()
        self._runs[(app, run_id)] = dataclasses.replace(
            run, owner=None, lease_expires_at=now, updated_at=now
        )

    async def finish_run(
        self,
        app: str,
        run_id: str,
        token: int,
        status: FinalStatus,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> RunRecord:
        check_json(output=output, error=error)
        run = self._owned(app, run_id, token)
        run = dataclasses.replace(
            run,
            status=status,
            output=output,
            error=error,
            owner=None,
            lease_expires_at=None,
            updated_at=self._now(),
        )
        self._runs[(app, run_id)] = run
        if run.queue is not None:
            self._wake(slot_topic(app, run.queue))
        return run

    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        run = self._runs.get((app, run_id))
        if run is None:
            return None
        if run.status == "running":
            run = dataclasses.replace(run, cancel_requested=True, updated_at=self._now())
        elif run.status in ("failed", "queued", "waiting"):
            run = dataclasses.replace(run, status="cancelled", updated_at=self._now())
        self._runs[(app, run_id)] = run
        return run

    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        run = self._runs.get((app, run_id))
        if run is None:
            return None
        return run, self._ordered_steps((app, run_id))

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        return self._runs.get((app, run_id))

    async def list_runs(
        self,
        app: str,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        queue: str | None = None,
        since: float | None = None,
        until: float | None = None,
        id_prefix: str | None = None,
        after: tuple[float, str] | None = None,
    ) -> Sequence[RunRecord]:
        query = ListQuery(app, status, workflow, queue, since, until, id_prefix, after, limit)
        # A test double: filtering every run of the store is fine here.
        runs = [run for (a, _), run in self._runs.items() if a == app and query.matches(run)]
        runs.sort(key=listing_key, reverse=True)
        return runs[:limit]

    async def queue_stats(self, app: str) -> list[QueueCounts]:
        now = self._now()
        counts: dict[str, QueueCounts] = {}
        for (run_app, _), run in self._runs.items():
            if run_app != app or run.queue is None or run.status not in ("queued", "running"):
                continue
            seen = counts.get(run.queue) or QueueCounts(run.queue, 0, 0, 0, None)
            if run.status == "running":
                seen = dataclasses.replace(seen, running=seen.running + 1)
            elif run.not_before is not None and run.not_before > now:
                seen = dataclasses.replace(seen, delayed=seen.delayed + 1)
            else:
                oldest = seen.oldest_ready_at
                if oldest is None or run.created_at < oldest:
                    oldest = run.created_at
                seen = dataclasses.replace(seen, ready=seen.ready + 1, oldest_ready_at=oldest)
            counts[run.queue] = seen
        return [counts[name] for name in sorted(counts)]

    async def requeue_run(
        self, app: str, run_id: str, *, queue: str, steal_from: str | None = None
    ) -> tuple[RunRecord, bool] | None:
        check_names(app=app, run_id=run_id, queue=queue)
        key = (app, run_id)
        run = self._runs.get(key)
        if run is None:
            return None
        now = self._now()
        requeue, drop_failed = decide_requeue(run, now, steal_from)
        if not requeue:
            return run, False
        if drop_failed:
            steps = self._steps.get(key, {})
            for step_id in [s.step_id for s in steps.values() if s.status == "failed"]:
                del steps[step_id]
        run = requeued_record(run, queue, now)
        self._runs[key] = run
        self._enqueued.setdefault(key, next(self._sequence))
        self._wake(app)
        return run, True

    async def enqueue_run(self, new: NewRun) -> tuple[RunRecord, bool]:
        check_enqueue(new)
        key = (new.app, new.run_id)
        existing = self._runs.get(key)
        if existing is not None:
            return existing, False
        now = self._now()
        run = queued_record(new, now)
        self._runs[key] = run
        self._enqueued[key] = next(self._sequence)
        self._wake(new.app)
        return run, True

    def _wake(self, app: str) -> None:
        work = self._work
        if work is not None and work.loop is asyncio.get_running_loop():
            work.wake(app)

    async def wait_for_work(
        self,
        app: str,
        timeout: float,  # noqa: ASYNC109 - the API
        *,
        queues: Sequence[str] = (),
    ) -> bool:
        """Woken by enqueues and finishes on this store object, in this process."""
        slots = [slot_topic(app, queue) for queue in queues]
        return await self._waiters().wait(app, timeout, slots)

    async def wait_for_signal(self, app: str, timeout: float) -> bool:  # noqa: ASYNC109 - the API
        """Woken by signals sent through this store object, in this process."""
        return await self._waiters().wait(signal_topic(app), timeout)

    def _waiters(self) -> WorkWaiters:
        loop = asyncio.get_running_loop()
        if self._work is None or self._work.loop is not loop:
            self._work = WorkWaiters(loop)
        return self._work

    async def claim_queued(
        self,
        app: str,
        queues: Sequence[QueueLimits],
        *,
        owner: str,
        lease_ttl: float,
        limit: int,
    ) -> list[Claim]:
        check_names(app=app, owner=owner)
        now = self._now()
        claims: list[Claim] = []
        for limits in queues:
            room = queue_room(limits, list(self._queue_runs(app, limits.name)), now)
            room = min(room, limit - len(claims))
            for run in self._due_parked(app, limits.name, now)[: max(room, 0)]:
                woken = dataclasses.replace(
                    run,
                    status="running",
                    owner=owner,
                    token=run.token + 1,
                    lease_expires_at=now + lease_ttl,
                    updated_at=now,
                )
                self._runs[app, run.run_id] = woken
                claims.append(Claim(woken, self._ordered_steps((app, run.run_id)), True))
                room -= 1
            eligible = sorted(
                (
                    run
                    for run in self._queue_runs(app, limits.name)
                    if run.status == "queued" and (run.not_before is None or run.not_before <= now)
                ),
                key=lambda run: (run.priority, self._enqueued.get((app, run.run_id), 0)),
            )
            for run in eligible[: max(room, 0)]:
                started = dataclasses.replace(
                    run,
                    status="running",
                    owner=owner,
                    token=run.token + 1,
                    attempts=run.attempts + 1,
                    lease_expires_at=now + lease_ttl,
                    started_at=now,
                    updated_at=now,
                )
                self._runs[app, run.run_id] = started
                claims.append(Claim(started, self._ordered_steps((app, run.run_id)), True))
        return claims

    def _due_parked(self, app: str, queue: str, now: float) -> list[RunRecord]:
        due = [
            run
            for run in self._queue_runs(app, queue)
            if run.status == "waiting" and run.not_before is not None and run.not_before <= now
        ]
        due.sort(key=lambda run: run.not_before or 0.0)
        return due

    async def park_run(
        self,
        app: str,
        run_id: str,
        token: int,
        *,
        queue: str,
        wake_at: float | None,
        signal: tuple[str, int] | None = None,
    ) -> None:
        check_names(app=app, queue_name=queue)
        run = self._runs.get((app, run_id))
        if run is not None and run.status == "waiting" and run.token == token:
            return
        run = self._owned(app, run_id, token)
        now = self._now()
        if signal is not None and len(self._signals.get((app, run_id, signal[0]), ())) > signal[1]:
            wake_at = now
        self._runs[app, run_id] = dataclasses.replace(
            run,
            status="waiting",
            owner=None,
            lease_expires_at=None,
            queue=run.queue if run.queue is not None else queue,
            not_before=wake_at,
            updated_at=now,
        )
        self._wake(app)  # its slot is free, and it may be due already

    def _queue_runs(self, app: str, queue: str) -> Sequence[RunRecord]:
        return [run for (a, _), run in self._runs.items() if a == app and run.queue == queue]

    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        check_signal(app, run_id, name, payload)
        queue = self._signals.setdefault((app, run_id, name), [])
        queue.append(payload)
        run = self._runs.get((app, run_id))
        if run is not None and run.status == "waiting":
            now = self._now()
            self._runs[app, run_id] = dataclasses.replace(run, not_before=now, updated_at=now)
            self._wake(app)
        self._wake(signal_topic(app))
        return len(queue) - 1

    async def send_signal_once(self, app: str, run_id: str, name: str, payload: str) -> bool:
        check_signal(app, run_id, name, payload)
        queue = self._signals.setdefault((app, run_id, name), [])
        if queue:
            return False
        queue.append(payload)
        run = self._runs.get((app, run_id))
        if run is not None and run.status == "waiting":
            now = self._now()
            self._runs[app, run_id] = dataclasses.replace(run, not_before=now, updated_at=now)
            self._wake(app)
        self._wake(signal_topic(app))
        return True

    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        queue = self._signals.get((app, run_id, name), [])
        return queue[index] if 0 <= index < len(queue) else None

    async def read_signals(
        self, app: str, wanted: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], str]:
        check_signal_keys(app, wanted)
        found: dict[tuple[str, str, int], str] = {}
        for run_id, name, index in wanted:
            queue = self._signals.get((app, run_id, name), [])
            if 0 <= index < len(queue):
                found[run_id, name, index] = queue[index]
        return found

    # -- retention -------------------------------------------------------------------------

    async def delete_run(self, app: str, run_id: str) -> RunRecord | None:
        check_names(app=app, run_id=run_id)
        key = (app, run_id)
        run = self._runs.get(key)
        if run is None:
            return None
        if run.status not in FINAL_STATUSES:
            raise not_finished(app, run_id, run.status)
        self._drop(key)
        return run

    def _drop(self, key: _RunKey) -> None:
        del self._runs[key]
        self._steps.pop(key, None)
        self._enqueued.pop(key, None)
        app, run_id = key
        for signal_key in [k for k in self._signals if k[0] == app and k[1] == run_id]:
            del self._signals[signal_key]

    def _prunable(
        self, app: str, finished_before: float, statuses: Sequence[FinalStatus]
    ) -> list[_RunKey]:
        return [
            key
            for key, run in self._runs.items()
            if key[0] == app and run.status in statuses and run.updated_at < finished_before
        ]

    async def prune_runs(
        self,
        app: str,
        *,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int,
    ) -> int:
        check_prune(app, statuses, limit)
        keys = self._prunable(app, finished_before, statuses)[:limit]
        for key in keys:
            self._drop(key)
        return len(keys)

    async def count_prunable_runs(
        self, app: str, *, finished_before: float, statuses: Sequence[FinalStatus]
    ) -> int:
        check_prune(app, statuses)
        return len(self._prunable(app, finished_before, statuses))
