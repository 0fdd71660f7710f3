"""The queue part of the Store contract: ``enqueue_run`` and ``claim_queued``.

Mixed into :class:`durable.testing.StoreContract`; see there for usage.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import pytest

from durable.stores.base import NewRun, QueueLimits, RunRecord, Store

APP = "contract-app"
LONG = 600.0


def queued(
    run_id: str,
    *,
    queue: str = "q",
    priority: int = 0,
    not_before: float | None = None,
    inputs: str = '{"n": 1}',
    workflow: str = "wf",
    app: str = APP,
) -> NewRun:
    return NewRun(app, run_id, workflow, inputs, None, queue, priority, not_before)


async def take(
    store: Store,
    *queues: QueueLimits | str,
    owner: str = "worker-a",
    limit: int = 10,
    app: str = APP,
) -> list[str]:
    """The run ids ``claim_queued`` starts, in the order it answers them."""
    limits = [QueueLimits(q) if isinstance(q, str) else q for q in queues or ("q",)]
    claims = await store.claim_queued(app, limits, owner=owner, lease_ttl=LONG, limit=limit)
    for claimed in claims:
        assert claimed.acquired
        assert claimed.run.status == "running"
        assert claimed.run.owner == owner
    return [c.run.run_id for c in claims]


async def enqueue(store: Store, new: NewRun) -> RunRecord:
    run, created = await store.enqueue_run(new)
    assert created, f"run {new.run_id!r} was not created"
    return run


class QueueContract:
    """Queued runs: recorded by ``enqueue_run``, started by ``claim_queued``."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    async def test_enqueue_records_a_queued_run(self, store: Store) -> None:
        """A new queued run is stored with its queue fields, no owner, token and attempts 0."""
        later = time.time() + 3600
        run = await enqueue(store, queued("r1", queue="orders", priority=3, not_before=later))
        assert (run.status, run.queue, run.priority) == ("queued", "orders", 3)
        assert run.not_before == pytest.approx(later, abs=1e-3)
        assert (run.owner, run.token, run.attempts, run.lease_expires_at) == (None, 0, 0, None)
        assert (run.output, run.error, run.started_at, run.cancel_requested) == (
            None,
            None,
            None,
            False,
        )
        assert await store.get_run(APP, "r1") == run
        assert [r.run_id for r in await store.list_runs(APP, status="queued")] == ["r1"]
        loaded = await store.load_run(APP, "r1")
        assert loaded == (run, ())

    async def test_enqueue_of_an_existing_run_returns_it_unchanged(self, store: Store) -> None:
        """Enqueueing an id again, with any inputs or workflow, changes nothing."""
        first = await enqueue(store, queued("r1"))
        for again in (queued("r1"), queued("r1", inputs='{"n": 2}'), queued("r1", workflow="x")):
            run, created = await store.enqueue_run(again)
            assert not created
            assert run == first
        await store.claim_run(NewRun(APP, "direct", "wf", "{}"), owner="o", lease_ttl=LONG)
        run, created = await store.enqueue_run(queued("direct"))
        assert not created
        assert (run.status, run.queue) == ("running", None)

    async def test_claim_queued_starts_runs_by_priority_then_fifo(self, store: Store) -> None:
        """Lower priority first; within a priority, in the order they were enqueued."""
        for run_id, priority in [("a", 5), ("b", 1), ("c", 5), ("d", 1), ("e", 0)]:
            await enqueue(store, queued(run_id, priority=priority))
        assert await take(store, limit=1) == ["e"]
        assert await take(store, limit=2) == ["b", "d"]
        assert await take(store, limit=10) == ["a", "c"]
        assert await take(store) == []

    async def test_a_started_run_is_running_with_its_first_token(self, store: Store) -> None:
        """A started run has token 1, one attempt, a lease, started_at, and keeps its queue."""
        await enqueue(store, queued("r1", queue="q", priority=2))
        before = time.time()
        claims = await store.claim_queued(
            APP, [QueueLimits("q")], owner="worker-a", lease_ttl=LONG, limit=5
        )
        assert len(claims) == 1
        run = claims[0].run
        assert (run.status, run.token, run.attempts, run.owner) == ("running", 1, 1, "worker-a")
        assert (run.queue, run.priority) == ("q", 2)
        assert run.lease_expires_at is not None
        assert run.lease_expires_at > before + 60
        assert run.started_at is not None
        assert run.started_at >= before - 1
        assert claims[0].steps == ()
        assert await store.get_run(APP, "r1") == run

    async def test_claim_queued_waits_for_not_before(self, store: Store) -> None:
        """A run is not started before its ``not_before``."""
        await enqueue(store, queued("later", not_before=time.time() + 3600))
        await enqueue(store, queued("soon", not_before=time.time() + 0.3))
        await enqueue(store, queued("past", not_before=time.time() - 10))
        assert await take(store) == ["past"]
        await asyncio.sleep(0.5)
        assert await take(store) == ["soon"]
        assert (await store.get_run(APP, "later")).status == "queued"  # type: ignore[union-attr]

    async def test_claim_queued_reads_only_the_named_queues_of_its_app(self, store: Store) -> None:
        """Other queues and other apps' queues are left alone."""
        await enqueue(store, queued("mine", queue="q"))
        await enqueue(store, queued("other-queue", queue="other"))
        await enqueue(store, queued("other-app", queue="q", app="another-app"))
        assert await take(store, "q") == ["mine"]
        assert await take(store, "q") == []
        assert await take(store, "q", app="another-app") == ["other-app"]
        assert await take(store, "other", "q") == ["other-queue"]

    async def test_concurrency_caps_the_running_runs_of_a_queue(self, store: Store) -> None:
        """No more than ``concurrency`` runs of the queue run at once; finishing frees a slot."""
        for n in range(5):
            await enqueue(store, queued(f"r{n}"))
        capped = QueueLimits("q", concurrency=2)
        assert await take(store, capped) == ["r0", "r1"]
        assert await take(store, capped, owner="worker-b") == []
        run = await store.get_run(APP, "r0")
        assert run is not None
        await store.finish_run(APP, "r0", run.token, "completed", output="1")
        assert await take(store, capped, owner="worker-b") == ["r2"]

    async def test_concurrency_counts_runs_started_directly(self, store: Store) -> None:
        """A queued run started by claim_run holds a slot of its queue too."""
        await enqueue(store, queued("direct"))
        await enqueue(store, queued("r1"))
        direct = await store.claim_run(
            NewRun(APP, "direct", "wf", '{"n": 1}'), owner="caller", lease_ttl=LONG
        )
        assert direct.acquired
        assert await take(store, QueueLimits("q", concurrency=1)) == []

    async def test_rate_limit_caps_starts_per_window(self, store: Store) -> None:
        """``rate_limit=(n, seconds)`` starts at most n runs in any window, finished or not."""
        for n in range(4):
            await enqueue(store, queued(f"r{n}"))
        limited = QueueLimits("q", rate_limit=(2, 0.6))
        assert await take(store, limited) == ["r0", "r1"]
        run = await store.get_run(APP, "r0")
        assert run is not None
        await store.finish_run(APP, "r0", run.token, "completed", output="1")
        assert await take(store, limited) == []
        await asyncio.sleep(0.8)
        assert await take(store, limited) == ["r2", "r3"]

    async def test_concurrent_claimers_share_out_runs_within_the_caps(self, store: Store) -> None:
        """Racing claimers never start a run twice nor exceed the concurrency cap."""
        for n in range(12):
            await enqueue(store, queued(f"r{n:02}"))
        capped = QueueLimits("q", concurrency=7)
        rounds = await asyncio.gather(
            *(take(store, capped, owner=f"worker-{n}", limit=3) for n in range(6))
        )
        started = [run_id for got in rounds for run_id in got]
        assert len(started) == len(set(started)) == 7
        assert len(await store.list_runs(APP, status="running")) == 7

    async def test_claim_run_starts_a_queued_run(self, store: Store) -> None:
        """A direct call of a queued run's id starts it at once, keeping its queue."""
        await enqueue(store, queued("r1", not_before=time.time() + 3600))
        got = await store.claim_run(
            NewRun(APP, "r1", "wf", '{"n": 1}'), owner="caller", lease_ttl=LONG
        )
        assert got.acquired
        assert (got.run.status, got.run.token, got.run.attempts) == ("running", 1, 1)
        assert (got.run.owner, got.run.queue) == ("caller", "q")
        assert got.run.started_at is not None
        assert await take(store) == []

    async def test_claim_run_of_a_queued_run_with_other_inputs_is_refused(
        self, store: Store
    ) -> None:
        """Other inputs or another workflow leave a queued run unchanged, not acquired."""
        before = await enqueue(store, queued("r1"))
        for new in (NewRun(APP, "r1", "wf", '{"n": 2}'), NewRun(APP, "r1", "other", '{"n": 1}')):
            got = await store.claim_run(new, owner="caller", lease_ttl=LONG)
            assert not got.acquired
            assert got.run == before

    async def test_cancel_of_a_queued_run_cancels_it_at_once(self, store: Store) -> None:
        """Nobody executes a queued run: a cancel request ends it, and it is never started."""
        await enqueue(store, queued("r1"))
        cancelled = await store.request_cancel(APP, "r1")
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        assert await take(store) == []
        assert (await store.get_run(APP, "r1")) == cancelled

    async def test_a_run_created_by_claim_run_has_no_queue(self, store: Store) -> None:
        """Direct runs carry no queue and started_at is set; they are never claimed from one."""
        got = await store.claim_run(NewRun(APP, "r1", "wf", "{}"), owner="o", lease_ttl=LONG)
        assert (got.run.queue, got.run.priority, got.run.not_before) == (None, 0, None)
        assert got.run.started_at is not None
        assert await take(store) == []
