"""Store.wait_for_work: enqueues and queued runs' finishes wake the waits, from any store object."""

from __future__ import annotations

import asyncio
import time
import warnings
from pathlib import Path

import pytest
from tests import _services
from tests._twins import twin
from tests.test_event_loops import _check

from durable.stores.base import NewRun, QueueLimits, Store

APP = "app"
LONG = 30.0


def queued(run_id: str, app: str = APP) -> NewRun:
    return NewRun(app, run_id, "wf", "[]", None, "jobs", 0, None)


async def listening(store: Store) -> None:
    """Let the store's first wait set up its channel (it wakes once it listens)."""
    await store.wait_for_work(APP, 0.5)
    await store.wait_for_work(APP, 0.05)


async def test_a_wait_with_nothing_to_do_ends_at_its_timeout(store: Store) -> None:
    started = time.monotonic()
    await store.wait_for_work(APP, 0.05)  # may answer True once it listens
    assert await store.wait_for_work(APP, 0.1) is False
    assert time.monotonic() - started < 5


async def test_an_enqueue_elsewhere_wakes_the_wait(store: Store) -> None:
    async with twin(store) as other:
        await listening(store)
        wait = asyncio.create_task(store.wait_for_work(APP, LONG))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await other.enqueue_run(queued("r1"))
        assert await asyncio.wait_for(wait, 5) is True
        assert time.monotonic() - started < 2


async def test_a_wake_up_is_for_its_app_only(store: Store) -> None:
    async with twin(store) as other:
        await listening(store)
        await other.enqueue_run(queued("r1", app="other-app"))
        assert await store.wait_for_work(APP, 0.3) is False


async def test_a_wake_up_while_nobody_waits_is_kept_for_the_next_wait(store: Store) -> None:
    async with twin(store) as other:
        await listening(store)
        await other.enqueue_run(queued("r1"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert await store.wait_for_work(APP, LONG) is True
        assert time.monotonic() - started < 1


@pytest.mark.parametrize(("named", "woken"), [("jobs", True), ("other", False)])
async def test_finishing_a_queued_run_wakes_the_waits_that_name_its_queue(
    store: Store, named: str, woken: bool
) -> None:
    """A finish frees a slot of its queue only: waits naming other queues sleep on."""
    async with twin(store) as other:
        await other.enqueue_run(queued("r1"))
        [claim] = await other.claim_queued(
            APP, [QueueLimits("jobs", 1, None)], owner="w", lease_ttl=LONG, limit=1
        )
        await listening(store)
        timeout = LONG if woken else 1.0
        wait = asyncio.create_task(store.wait_for_work(APP, timeout, queues=[named]))
        await asyncio.sleep(0.05)
        await other.finish_run(APP, "r1", claim.run.token, "completed", output="1")
        assert await asyncio.wait_for(wait, 5) is woken


async def test_a_signal_to_a_parked_run_wakes_the_wait(store: Store) -> None:
    async with twin(store) as other:
        await other.enqueue_run(queued("r1"))
        [claim] = await other.claim_queued(
            APP, [QueueLimits("jobs")], owner="w", lease_ttl=LONG, limit=1
        )
        await other.park_run(APP, "r1", claim.run.token, queue="jobs", wake_at=None)
        await listening(store)
        wait = asyncio.create_task(store.wait_for_work(APP, LONG))
        await asyncio.sleep(0.05)
        await other.send_signal(APP, "r1", "go", "1")
        assert await asyncio.wait_for(wait, 5) is True


async def test_closing_the_store_ends_its_waits(store: Store) -> None:
    if type(store).__name__ not in ("PostgresStore", "RedisStore"):
        pytest.skip("a polling store's wait just sleeps")
    await listening(store)
    wait = asyncio.create_task(store.wait_for_work(APP, LONG))
    await asyncio.sleep(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await store.close()
        assert await asyncio.wait_for(wait, 5) in (True, False)


async def test_a_cancelled_wait_ends_at_once(store: Store) -> None:
    await listening(store)
    wait = asyncio.create_task(store.wait_for_work(APP, LONG))
    await asyncio.sleep(0.05)
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(wait, 2)


@pytest.mark.parametrize("kind", _services.STORE_KINDS)
def test_waits_on_successive_loops_leak_nothing(kind: str, tmp_path: Path) -> None:
    """Each asyncio.run listens anew; what an earlier loop opened is closed, not leaked."""

    async def waits(store: Store) -> None:
        await store.wait_for_work(APP, 0.3)
        await store.wait_for_work(APP, 0.05)

    def scenario() -> None:
        store, cleanup = asyncio.run(_services.new_store(kind, tmp_path))
        try:
            asyncio.run(waits(store))
            asyncio.run(waits(store))
            asyncio.run(waits(store))
        finally:

            async def close() -> None:
                try:
                    await store.close()
                finally:
                    await cleanup()

            asyncio.run(close())

    _check(kind, scenario)
