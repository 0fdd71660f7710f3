"""The listing part of the Store contract: ``list_runs`` filters and paging, ``queue_stats``,
``requeue_run``.

Mixed into :class:`durable.testing.StoreContract`; see there for usage.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pytest

from durable.errors import LeaseLostError
from durable.stores.base import NewRun, QueueLimits, RunRecord, StepRecord, Store
from durable.testing._queue_contract import APP, LONG, enqueue, queued, take

SHORT = 0.05
EXPIRE = 0.15


def _new(run_id: str, *, workflow: str = "wf", app: str = APP) -> NewRun:
    return NewRun(app, run_id, workflow, '{"n": 1}')


def _step(step_id: str, position: int, *, failed: bool = False) -> StepRecord:
    return StepRecord(
        step_id=step_id,
        position=position,
        task=step_id,
        status="failed" if failed else "completed",
        result=None if failed else '"ok"',
        error='{"type": "ValueError", "message": "boom"}' if failed else None,
        attempts=1,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_001.0,
    )


async def _started(
    store: Store, run_id: str, *, lease_ttl: float = LONG, owner: str = "owner-a", **kw: Any
) -> RunRecord:
    claim = await store.claim_run(_new(run_id, **kw), owner=owner, lease_ttl=lease_ttl)
    assert claim.acquired
    return claim.run


async def _ids(store: Store, **filters: Any) -> list[str]:
    return [run.run_id for run in await store.list_runs(APP, **filters)]


async def _page_through(store: Store, page: int, **filters: Any) -> list[str]:
    """Every run id listed, page by page, each page after the last run of the one before."""
    seen: list[str] = []
    after: tuple[float, str] | None = None
    while True:
        runs = await store.list_runs(APP, limit=page, after=after, **filters)
        seen += [run.run_id for run in runs]
        if len(runs) < page:
            return seen
        after = (runs[-1].created_at, runs[-1].run_id)


class ListingContract:
    """Listing runs at scale: filters, keyset pages, queue counts and requeue."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    # -- list_runs ---------------------------------------------------------

    async def test_list_runs_order_is_total(self, store: Store) -> None:
        """Newest first by created_at, then by run id descending: one total order."""
        for i in range(30):
            await _started(store, f"r-{i:02}")
        runs = await store.list_runs(APP, limit=100)
        keys = [(run.created_at, run.run_id) for run in runs]
        assert keys == sorted(keys, reverse=True)
        assert len(keys) == 30

    async def test_pages_cover_every_run_once_in_order(self, store: Store) -> None:
        """Paging with ``after`` lists each run exactly once, in the order of one big list."""
        for i in range(23):
            await _started(store, f"r-{i:02}", workflow="even" if i % 2 == 0 else "odd")
        everything = await _ids(store, limit=1000)
        assert len(everything) == 23
        for page in (1, 4, 23, 50):
            assert await _page_through(store, page) == everything
        evens = await _ids(store, workflow="even", limit=1000)
        assert len(evens) == 12
        assert await _page_through(store, 5, workflow="even") == evens

    async def test_after_a_run_excludes_it_and_newer_ones(self, store: Store) -> None:
        """A page after run X holds only runs listed after X, the next ones first."""
        for i in range(5):
            await _started(store, f"r-{i}")
            await asyncio.sleep(0.002)
        runs = await store.list_runs(APP)
        assert [r.run_id for r in runs] == ["r-4", "r-3", "r-2", "r-1", "r-0"]
        third = runs[2]
        after = (third.created_at, third.run_id)
        assert await _ids(store, after=after) == ["r-1", "r-0"]
        assert await _ids(store, after=after, limit=1) == ["r-1"]
        oldest = runs[-1]
        assert await _ids(store, after=(oldest.created_at, oldest.run_id)) == []

    async def test_time_window_bounds_created_at(self, store: Store) -> None:
        """``since`` includes runs created at that instant, ``until`` excludes them."""
        created = []
        for i in range(3):
            created.append((await _started(store, f"r-{i}")).created_at)
            await asyncio.sleep(0.01)
        first, second, third = created
        assert await _ids(store, since=second) == ["r-2", "r-1"]
        assert await _ids(store, until=second) == ["r-0"]
        assert await _ids(store, since=first, until=third) == ["r-1", "r-0"]
        assert await _ids(store, since=third + 3600) == []
        assert await _ids(store, since=second, status="running", limit=1) == ["r-2"]

    async def test_id_prefix_is_literal(self, store: Store) -> None:
        """An id prefix matches ids starting with it; ``%``, ``_``, ``*`` and ``\\`` are plain."""
        ids = ["a%b", "a_b", "axb", "a\\b", "a*b", "ab", "b-a", "a", "é-1", "éa"]
        for run_id in ids:
            await _started(store, run_id)

        async def matching(prefix: str) -> set[str]:
            return {r.run_id for r in await store.list_runs(APP, id_prefix=prefix, limit=100)}

        assert await matching("a%") == {"a%b"}
        assert await matching("a_") == {"a_b"}
        assert await matching("a\\") == {"a\\b"}
        assert await matching("a*") == {"a*b"}
        assert await matching("a") == {"a%b", "a_b", "axb", "a\\b", "a*b", "ab", "a"}
        assert await matching("é") == {"é-1", "éa"}
        assert await matching("ab") == {"ab"}
        assert await matching("z") == set()
        assert await matching("\U0010ffff") == set()
        assert await matching("") == set(ids)

    async def test_id_prefix_pages_and_combines(self, store: Store) -> None:
        """An id prefix with another filter and pages of it."""
        for i in range(12):
            await _started(store, f"order-{i:02}", workflow="orders")
            await _started(store, f"refund-{i:02}", workflow="refunds")
        orders = await _ids(store, id_prefix="order-", limit=100)
        assert sorted(orders) == [f"order-{i:02}" for i in range(12)]
        assert await _page_through(store, 5, id_prefix="order-") == orders
        assert await _ids(store, id_prefix="order-", workflow="refunds") == []

    async def test_list_by_queue(self, store: Store) -> None:
        """``queue`` keeps the runs enqueued in that queue, whatever their status."""
        await enqueue(store, queued("q1-a", queue="q1"))
        await enqueue(store, queued("q2-a", queue="q2"))
        await enqueue(store, queued("q1-b", queue="q1"))
        await _started(store, "direct")
        assert await take(store, "q1", limit=1) == ["q1-a"]
        assert await _ids(store, queue="q1") == ["q1-b", "q1-a"]
        assert await _ids(store, queue="q1", status="running") == ["q1-a"]
        assert await _ids(store, queue="q2") == ["q2-a"]
        assert await _ids(store, queue="none") == []

    # -- queue_stats -------------------------------------------------------

    async def test_queue_stats_counts_each_queue(self, store: Store) -> None:
        """Ready, delayed and running runs per queue; the oldest ready run's enqueue time."""
        assert await store.queue_stats(APP) == []
        first = await enqueue(store, queued("a1", queue="alpha"))
        await enqueue(store, queued("a2", queue="alpha"))
        await enqueue(store, queued("a3", queue="alpha", not_before=time.time() + 3600))
        await enqueue(store, queued("b1", queue="beta"))
        await enqueue(store, queued("other-app", queue="alpha", app="another-app"))
        await _started(store, "direct")
        assert await take(store, "beta") == ["b1"]
        stats = {c.queue: c for c in await store.queue_stats(APP)}
        assert sorted(stats) == ["alpha", "beta"]
        alpha, beta = stats["alpha"], stats["beta"]
        assert (alpha.ready, alpha.delayed, alpha.running) == (2, 1, 0)
        assert alpha.oldest_ready_at == pytest.approx(first.created_at, abs=1e-6)
        assert (beta.ready, beta.delayed, beta.running, beta.oldest_ready_at) == (0, 0, 1, None)
        assert await take(store, "alpha", limit=1) == ["a1"]
        alpha = {c.queue: c for c in await store.queue_stats(APP)}["alpha"]
        second = await store.get_run(APP, "a2")
        assert second is not None
        assert (alpha.ready, alpha.delayed, alpha.running) == (1, 1, 1)
        assert alpha.oldest_ready_at == pytest.approx(second.created_at, abs=1e-6)

    async def test_queue_stats_forget_finished_runs(self, store: Store) -> None:
        """A queue whose runs all finished is not reported."""
        await enqueue(store, queued("a1", queue="alpha"))
        [claim] = await store.claim_queued(
            APP, [QueueLimits("alpha")], owner="w", lease_ttl=LONG, limit=1
        )
        await store.finish_run(APP, "a1", claim.run.token, "completed", output="1")
        assert await store.queue_stats(APP) == []

    # -- requeue_run -------------------------------------------------------

    async def test_requeue_of_an_absent_run_is_none(self, store: Store) -> None:
        """Requeueing an unknown run answers None and creates nothing."""
        assert await store.requeue_run(APP, "ghost", queue="q") is None
        assert await store.get_run(APP, "ghost") is None

    async def test_requeue_a_delayed_run_makes_it_ready(self, store: Store) -> None:
        """A queued run held back by not_before is claimable at once after requeue."""
        await enqueue(store, queued("later", not_before=time.time() + 3600))
        assert await take(store) == []
        answer = await store.requeue_run(APP, "later", queue="elsewhere")
        assert answer is not None
        run, requeued = answer
        assert requeued
        assert (run.status, run.queue, run.not_before) == ("queued", "q", None)
        assert await store.get_run(APP, "later") == run
        assert await take(store) == ["later"]

    async def test_requeue_a_failed_run_drops_its_failed_steps(self, store: Store) -> None:
        """A failed run waits in its queue without its failed steps or error; a worker takes it."""
        run = await _started(store, "broken")
        await store.save_step(APP, "broken", run.token, _step("done", 0))
        await store.save_step(APP, "broken", run.token, _step("broke", 1, failed=True))
        await store.finish_run(APP, "broken", run.token, "failed", error='{"type": "E"}')
        answer = await store.requeue_run(APP, "broken", queue="repairs")
        assert answer is not None
        requeued_run, requeued = answer
        assert requeued
        assert (requeued_run.status, requeued_run.queue, requeued_run.error) == (
            "queued",
            "repairs",
            None,
        )
        assert (requeued_run.owner, requeued_run.lease_expires_at) == (None, None)
        loaded = await store.load_run(APP, "broken")
        assert loaded is not None
        assert loaded[0] == requeued_run
        assert [s.step_id for s in loaded[1]] == ["done"]
        [claim] = await store.claim_queued(
            APP, [QueueLimits("repairs")], owner="worker", lease_ttl=LONG, limit=5
        )
        assert claim.run.run_id == "broken"
        assert (claim.run.status, claim.run.owner, claim.run.attempts) == ("running", "worker", 2)
        assert claim.run.token > run.token
        assert [s.step_id for s in claim.steps] == ["done"]

    async def test_requeue_a_running_run_with_a_live_lease_is_refused(self, store: Store) -> None:
        """A running run whose owner holds a live lease stays as it was."""
        run = await _started(store, "busy")
        answer = await store.requeue_run(APP, "busy", queue="q")
        assert answer == (run, False)
        answer = await store.requeue_run(APP, "busy", queue="q", steal_from="someone-else")
        assert answer == (run, False)
        assert await store.get_run(APP, "busy") == run

    async def test_requeue_an_expired_run_fences_its_old_owner(self, store: Store) -> None:
        """A running run whose lease expired is queued; the old owner's writes are refused."""
        run = await _started(store, "stale", lease_ttl=SHORT)
        await store.save_step(APP, "stale", run.token, _step("done", 0))
        await asyncio.sleep(EXPIRE)
        answer = await store.requeue_run(APP, "stale", queue="rescue")
        assert answer is not None
        requeued_run, requeued = answer
        assert requeued
        assert (requeued_run.status, requeued_run.queue, requeued_run.owner) == (
            "queued",
            "rescue",
            None,
        )
        with pytest.raises(LeaseLostError):
            await store.save_step(APP, "stale", run.token, _step("late", 1))
        with pytest.raises(LeaseLostError):
            await store.finish_run(APP, "stale", run.token, "completed", output="1")
        [claim] = await store.claim_queued(
            APP, [QueueLimits("rescue")], owner="worker", lease_ttl=LONG, limit=1
        )
        assert claim.run.run_id == "stale"
        assert [s.step_id for s in claim.steps] == ["done"]

    async def test_requeue_steals_from_a_named_dead_owner(self, store: Store) -> None:
        """A live lease is overridden only for the owner named by ``steal_from``."""
        await _started(store, "orphan", owner="dead-owner")
        answer = await store.requeue_run(APP, "orphan", queue="q", steal_from="dead-owner")
        assert answer is not None
        assert answer[1]
        assert answer[0].status == "queued"

    async def test_requeue_refuses_completed_runs(self, store: Store) -> None:
        """A completed run is returned unchanged."""
        done = await _started(store, "done")
        completed = await store.finish_run(APP, "done", done.token, "completed", output="7")
        assert await store.requeue_run(APP, "done", queue="q") == (completed, False)

    async def test_requeue_continues_a_cancelled_run(self, store: Store) -> None:
        """A cancelled run is queued again, its cancellation cleared, and can be claimed."""
        await enqueue(store, queued("dropped"))
        cancelled = await store.request_cancel(APP, "dropped")
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        answer = await store.requeue_run(APP, "dropped", queue="q")
        assert answer is not None
        run, requeued = answer
        assert requeued
        assert run.status == "queued"
        assert not run.cancel_requested
        assert run.error is None
        (claim,) = await store.claim_queued(
            APP, [QueueLimits("q")], owner="w", lease_ttl=30, limit=5
        )
        assert claim.run.run_id == "dropped"
        assert claim.run.status == "running"
        assert not claim.run.cancel_requested
