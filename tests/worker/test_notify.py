"""The store wakes what waits in one process when another acts: no poll needed.

Idle workers when a run is enqueued elsewhere, and signal waits when a
signal is sent elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tests._twins import twin

from durable import Workflow
from durable.engine import signal_poller, waits
from durable.stores.base import Store

# So long that a run picked up within seconds was announced, not polled.
NEVER = 30.0


@contextlib.asynccontextmanager
async def serving(wf: Workflow, **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    options.setdefault("handle_signals", False)
    worker = asyncio.create_task(wf.serve(**options))
    try:
        # Past its first pass, idle and listening.
        await asyncio.sleep(0.5)
        yield worker
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def declare(wf: Workflow) -> Any:
    @wf.workflow(id="job-{n}", queue="jobs")
    async def job(n: int) -> int:
        return n * 2

    return job


@contextlib.asynccontextmanager
async def elsewhere(store: Store) -> AsyncIterator[Any]:
    """The job as another process declares it: its own app object and store object."""
    async with twin(store) as other:
        app = Workflow("test-app", db=other)
        try:
            yield declare(app)
        finally:
            if other is not store:
                await app.close()


async def test_a_run_enqueued_elsewhere_wakes_an_idle_worker(wf: Workflow, store: Store) -> None:
    declare(wf)
    async with elsewhere(store) as job, serving(wf, poll_interval=NEVER):
        started = time.monotonic()
        handle = await job.enqueue(1)
        assert await handle.result(timeout=5) == 2
        assert time.monotonic() - started < 5


async def test_a_run_finished_elsewhere_frees_its_slot_for_an_idle_worker(
    make_app: Callable[..., Workflow], store: Store
) -> None:
    """Queue cap 1: a worker elsewhere finishes the run, this idle worker starts the next."""
    wf = make_app()
    wf.queue("jobs", concurrency=1)
    declare(wf)
    gate = asyncio.Event()
    async with twin(store) as other:
        there = Workflow("test-app", db=other)
        there.queue("jobs", concurrency=1)

        @there.workflow(id="job-{n}", queue="jobs")
        async def job(n: int) -> int:
            await gate.wait()
            return n * 2

        try:
            first = await job.enqueue(1)
            async with serving(there, poll_interval=NEVER):
                # Wait for the first run to start there, holding the queue's one slot.
                for _ in range(100):
                    if (await there.get_run("job-1")).status == "running":
                        break
                    await asyncio.sleep(0.05)
                async with serving(wf, poll_interval=NEVER, queues=["jobs"]):
                    second = await job.enqueue(2)
                    await asyncio.sleep(0.3)
                    assert (await wf.get_run("job-2")).status == "queued"
                    gate.set()
                    assert await first.result(timeout=5) == 2
                    assert await second.result(timeout=5) == 4
        finally:
            if other is not store:
                await there.close()


async def test_an_idle_worker_stops_at_once_when_cancelled(wf: Workflow) -> None:
    declare(wf)
    worker = asyncio.create_task(wf.serve(poll_interval=NEVER, handle_signals=False))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert time.monotonic() - started < 2


@pytest.mark.postgres
async def test_the_listener_comes_back_after_its_connection_is_killed(
    wf: Workflow, store: Store
) -> None:
    if type(store).__name__ != "PostgresStore":
        pytest.skip("PostgreSQL only")
    import asyncpg

    from durable.stores.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    declare(wf)
    async with elsewhere(store) as job, serving(wf, poll_interval=NEVER):
        assert await (await job.enqueue(1)).result(timeout=5) == 2
        conn = await asyncpg.connect(store.dsn)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %' AND strpos(query, $1) > 0",
                f"durable_work_{store.schema}",
            )
        finally:
            await conn.close()
        assert killed == 1
        await asyncio.sleep(0.5)
        assert await (await job.enqueue(2)).result(timeout=5) == 4


@pytest.mark.redis
async def test_the_subscription_comes_back_after_its_connection_is_killed(
    wf: Workflow, store: Store
) -> None:
    if type(store).__name__ != "RedisStore":
        pytest.skip("Redis only")
    import redis.asyncio as aioredis

    from durable.stores.redis import RedisStore

    assert isinstance(store, RedisStore)
    declare(wf)
    async with elsewhere(store) as job, serving(wf, poll_interval=NEVER):
        assert await (await job.enqueue(1)).result(timeout=5) == 2
        client = aioredis.Redis.from_url(store.url)
        try:
            killed = await client.client_kill_filter(_type="pubsub")
        finally:
            await client.aclose()
        assert killed >= 1
        await asyncio.sleep(0.5)
        assert await (await job.enqueue(2)).result(timeout=5) == 4


async def test_a_signal_sent_elsewhere_reaches_a_waiting_run_without_a_poll(
    make_app: Callable[..., Workflow], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the signal polling slowed to one read per 60 s, a signal sent by another
    process still reaches the waiting run: the store announced it."""
    monkeypatch.setattr(signal_poller, "POLL_MIN", NEVER * 2)
    monkeypatch.setattr(signal_poller, "POLL_MAX", NEVER * 2)
    monkeypatch.setattr(waits, "_FLAG_CHECK_MAX", NEVER * 2)
    wf = make_app(lease_ttl=NEVER * 6)

    @wf.workflow(id="waits-{n}")
    async def waiting(n: int) -> Any:
        return await wf.signal("go")

    async with twin(store) as other:
        sender = Workflow("test-app", db=other)
        call = asyncio.ensure_future(waiting(1))
        try:
            while not await wf.store.list_runs(wf.name, status="running"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            # Past the wait's first read of the store, which found nothing.
            await asyncio.sleep(0.5)
            await sender.send_signal("waits-1", "go", "now")
            assert await asyncio.wait_for(call, NEVER / 3) == "now"
        finally:
            if other is not store:
                await sender.close()
