"""The parked-run part of the Store contract: ``park_run``, and how claims and signals wake.

Mixed into :class:`durable.testing.StoreContract`; see there for usage.
"""

from __future__ import annotations

import time
from typing import ClassVar

import pytest

from durable.errors import LeaseLostError, RunNotFinishedError
from durable.stores.base import (
    FINAL_STATUSES,
    NewRun,
    QueueLimits,
    RunRecord,
    StepRecord,
    Store,
)
from durable.testing._queue_contract import APP, LONG, enqueue, queued, take

PAST = -1.0  # a wake time this many seconds from now: due already
FUTURE = 3600.0


async def running(store: Store, run_id: str, *, queue: str = "q") -> RunRecord:
    """A run of ``queue`` just started by a claim, with one completed step."""
    await enqueue(store, queued(run_id, queue=queue))
    claims = await store.claim_queued(
        APP, [QueueLimits(queue)], owner="worker-a", lease_ttl=LONG, limit=1
    )
    assert [c.run.run_id for c in claims] == [run_id]
    run = claims[0].run
    now = time.time()
    step = StepRecord("s", 0, "t", "completed", '"x"', None, 1, now, now)
    await store.save_step(APP, run_id, run.token, step)
    return run


async def stored(store: Store, run_id: str) -> RunRecord:
    run = await store.get_run(APP, run_id)
    assert run is not None
    return run


class ParkingContract:
    """Parked runs: ``waiting`` until their wake time or a signal, then claimed again."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    async def test_park_makes_the_run_waiting_without_owner(self, store: Store) -> None:
        """A parked run is waiting, unowned, in its queue with its wake time; listed as such."""
        run = await running(store, "r1", queue="orders")
        wake = time.time() + FUTURE
        await store.park_run(APP, "r1", run.token, queue="default", wake_at=wake)
        parked = await stored(store, "r1")
        assert (parked.status, parked.owner, parked.lease_expires_at) == ("waiting", None, None)
        assert (parked.queue, parked.token, parked.attempts) == ("orders", run.token, 1)
        assert parked.not_before == pytest.approx(wake, abs=1e-3)
        assert parked.started_at == run.started_at
        assert [r.run_id for r in await store.list_runs(APP, status="waiting")] == ["r1"]
        assert [r.run_id for r in await store.list_runs(APP, status="running")] == []

    async def test_a_parked_run_is_fenced_and_not_claimed_by_claim_run(self, store: Store) -> None:
        """Its former token writes nothing; claim_run leaves it to the queue's claims."""
        run = await running(store, "r1")
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=time.time() + PAST)
        now = time.time()
        step = StepRecord("s2", 1, "t", "completed", "1", None, 1, now, now)
        with pytest.raises(LeaseLostError):
            await store.save_step(APP, "r1", run.token, step)
        again = NewRun(APP, "r1", "wf", '{"n": 1}')
        claim = await store.claim_run(again, owner="caller", lease_ttl=LONG)
        assert not claim.acquired
        assert claim.run.status == "waiting"

    async def test_park_with_a_lost_token_raises(self, store: Store) -> None:
        """Only the owning token parks; a retry of a park that happened is accepted."""
        run = await running(store, "r1")
        with pytest.raises(LeaseLostError):
            await store.park_run(APP, "r1", run.token + 1, queue="q", wake_at=None)
        with pytest.raises(LeaseLostError):
            await store.park_run(APP, "absent", 1, queue="q", wake_at=None)
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=None)
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=None)
        assert (await stored(store, "r1")).status == "waiting"

    async def test_a_due_parked_run_is_woken_by_claim_queued(self, store: Store) -> None:
        """Due: claimed as running with a new token, its steps, attempts and start kept."""
        run = await running(store, "r1")
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=time.time() + PAST)
        claims = await store.claim_queued(
            APP, [QueueLimits("q")], owner="worker-b", lease_ttl=LONG, limit=5
        )
        assert [c.run.run_id for c in claims] == ["r1"]
        woken = claims[0].run
        assert (woken.status, woken.owner, woken.token) == ("running", "worker-b", run.token + 1)
        assert (woken.attempts, woken.started_at) == (run.attempts, run.started_at)
        assert woken.lease_expires_at is not None
        assert [s.step_id for s in claims[0].steps] == ["s"]
        assert await take(store, "q") == []

    async def test_a_parked_run_is_not_woken_before_its_time(self, store: Store) -> None:
        """Not due (a future wake time, or none): no claim takes it."""
        first = await running(store, "r1")
        second = await running(store, "r2")
        await store.park_run(APP, "r1", first.token, queue="q", wake_at=time.time() + FUTURE)
        await store.park_run(APP, "r2", second.token, queue="q", wake_at=None)
        assert await take(store, "q") == []
        assert (await stored(store, "r1")).status == "waiting"

    async def test_a_signal_makes_a_parked_run_due(self, store: Store) -> None:
        """send_signal to a waiting run lets the next claim wake it."""
        run = await running(store, "r1")
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=None, signal=("go", 0))
        assert await take(store, "q") == []
        await store.send_signal(APP, "r1", "go", '"now"')
        assert await take(store, "q") == ["r1"]

    async def test_parking_on_a_signal_already_sent_is_due_at_once(self, store: Store) -> None:
        """A signal stored before the park is not missed; another signal does not count."""
        first = await running(store, "r1")
        second = await running(store, "r2")
        await store.send_signal(APP, "r1", "go", "1")
        await store.send_signal(APP, "r2", "go", "1")
        await store.park_run(APP, "r1", first.token, queue="q", wake_at=None, signal=("go", 0))
        await store.park_run(APP, "r2", second.token, queue="q", wake_at=None, signal=("go", 1))
        assert await take(store, "q") == ["r1"]

    async def test_parked_runs_hold_no_concurrency_slot(self, store: Store) -> None:
        """With concurrency 1, parking the running run lets the next one start."""
        capped = QueueLimits("q", concurrency=1)
        first = await running(store, "r1")
        await enqueue(store, queued("r2"))
        assert await take(store, capped) == []
        await store.park_run(APP, "r1", first.token, queue="q", wake_at=time.time() + FUTURE)
        assert await take(store, capped) == ["r2"]

    async def test_due_parked_runs_come_first_within_the_caps(self, store: Store) -> None:
        """Woken before queued runs, earliest wake first, and never past the cap."""
        now = time.time()
        runs = [await running(store, f"p{i}") for i in range(3)]
        await enqueue(store, queued("fresh", priority=-5))
        for run, wake in zip(runs, (now - 1, now - 3, now - 2), strict=True):
            await store.park_run(APP, run.run_id, run.token, queue="q", wake_at=wake)
        capped = QueueLimits("q", concurrency=2)
        assert await take(store, capped) == ["p1", "p2"]
        assert await take(store, "q", limit=10) == ["p0", "fresh"]

    async def test_a_run_without_a_queue_parks_in_the_one_given(self, store: Store) -> None:
        """A run created by claim_run parks in ``queue`` and is woken from there."""
        claim = await store.claim_run(NewRun(APP, "direct", "wf", "{}"), owner="a", lease_ttl=LONG)
        await store.park_run(APP, "direct", claim.run.token, queue="home", wake_at=time.time() - 1)
        assert (await stored(store, "direct")).queue == "home"
        assert await take(store, "home") == ["direct"]

    async def test_cancelling_a_parked_run_cancels_it_at_once(self, store: Store) -> None:
        """request_cancel ends a waiting run as cancelled; no claim wakes it afterwards."""
        run = await running(store, "r1")
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=time.time() + PAST)
        cancelled = await store.request_cancel(APP, "r1")
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        assert await take(store, "q") == []
        await store.send_signal(APP, "r1", "go", "1")
        assert await take(store, "q") == []
        assert (await stored(store, "r1")).status == "cancelled"

    async def test_a_parked_run_is_never_deleted_nor_pruned(self, store: Store) -> None:
        """Waiting is unfinished: delete_run refuses it, a prune neither counts nor deletes it."""
        run = await running(store, "r1")
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=time.time() + FUTURE)
        with pytest.raises(RunNotFinishedError):
            await store.delete_run(APP, "r1")
        later = time.time() + 2 * FUTURE
        assert (
            await store.count_prunable_runs(APP, finished_before=later, statuses=FINAL_STATUSES)
            == 0
        )
        assert (
            await store.prune_runs(APP, finished_before=later, statuses=FINAL_STATUSES, limit=10)
            == 0
        )
        assert (await stored(store, "r1")).status == "waiting"

    async def test_requeue_leaves_a_parked_run_waiting(self, store: Store) -> None:
        """requeue_run refuses a waiting run: it wakes at its own time or on its signal."""
        run = await running(store, "r1")
        wake = time.time() + FUTURE
        await store.park_run(APP, "r1", run.token, queue="q", wake_at=wake)
        answer = await store.requeue_run(APP, "r1", queue="q")
        assert answer is not None
        kept, requeued = answer
        assert (requeued, kept.status) == (False, "waiting")
        after = await stored(store, "r1")
        assert after.status == "waiting"
        assert after.not_before == pytest.approx(wake, abs=1e-3)
        assert await take(store, "q") == []

    async def test_parked_runs_are_not_counted_as_running_by_queue_stats(
        self, store: Store
    ) -> None:
        """queue_stats counts a queue's running runs; a parked one holds no slot."""
        first = await running(store, "r1")
        await running(store, "r2")
        await store.park_run(APP, "r1", first.token, queue="q", wake_at=time.time() + FUTURE)
        [counts] = await store.queue_stats(APP)
        assert (counts.queue, counts.ready, counts.delayed, counts.running) == ("q", 0, 0, 1)

    async def test_a_run_parked_into_a_queue_is_listed_under_it(self, store: Store) -> None:
        """A run without a queue that parks in one is found by list_runs(queue=...)."""
        claim = await store.claim_run(NewRun(APP, "direct", "wf", "{}"), owner="a", lease_ttl=LONG)
        await store.park_run(APP, "direct", claim.run.token, queue="home", wake_at=None)
        listed = await store.list_runs(APP, queue="home", status="waiting")
        assert [r.run_id for r in listed] == ["direct"]
