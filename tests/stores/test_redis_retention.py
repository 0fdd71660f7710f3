"""RedisStore retention beyond the shared contract: ttl= and the index members it leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from tests.stores.test_redis import _ttls, client, make_store, prefix, url

from durable.errors import ConfigurationError
from durable.stores.base import NewRun, QueueLimits, StepRecord

if TYPE_CHECKING:
    from durable.stores.redis import RedisStore

pytestmark = pytest.mark.redis
__all__ = ["client", "make_store", "prefix", "url"]  # the fixtures this module uses

APP = "app"


def _step(step_id: str) -> StepRecord:
    return StepRecord(step_id, 0, "t", "completed", '"ok"', None, 1, 1.0, 2.0)


async def _finished(store: RedisStore, run_id: str) -> None:
    claim = await store.claim_run(NewRun(APP, run_id, "wf", "{}"), owner="a", lease_ttl=30)
    await store.save_step(APP, run_id, claim.run.token, _step("s"))
    await store.send_signal(APP, run_id, "go", "1")
    await store.finish_run(APP, run_id, claim.run.token, "completed", output="1")


async def _gone(client: Any, key_prefix: str, run_id: str) -> None:
    """Wait (at most about 20 s) until the run's hash has expired."""
    pattern = f"{key_prefix}:run:*:{run_id}"
    for _ in range(2000):
        if not [key async for key in client.scan_iter(match=pattern)]:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"run {run_id!r} never expired")


async def test_ttl_is_finished_ttl(make_store: Callable[..., RedisStore]) -> None:
    """ttl= sets the expiry finished_ttl= sets; both at once must agree; it must be > 0."""
    assert make_store(ttl=86400).finished_ttl == 86400
    assert make_store(finished_ttl=5).ttl == 5
    assert make_store(ttl=5, finished_ttl=5).ttl == 5
    with pytest.raises(ConfigurationError, match="same option"):
        make_store(ttl=5, finished_ttl=6)
    for bad in (0, -1, float("inf"), "60"):
        with pytest.raises(ConfigurationError, match="ttl"):
            make_store(ttl=bad)


async def test_ttl_expires_finished_runs_and_never_live_ones(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """With ttl, a finished run's keys expire; a running or queued run's keys never do."""
    store = make_store(ttl=60)
    await _finished(store, "done")
    await store.claim_run(NewRun(APP, "live", "wf", "{}"), owner="a", lease_ttl=30)
    await store.enqueue_run(NewRun(APP, "waiting", "wf", "{}", None, "q"))
    ttls: dict[str, list[int]] = {}
    async for key in client.scan_iter(match=f"{prefix}:*"):
        ttls.setdefault(key.decode().rsplit(":", 1)[-1], []).append(await client.pttl(key))
    assert len(ttls["done"]) == 3  # run, steps, signals
    assert all(0 < ttl <= 60_000 for ttl in ttls["done"])
    assert all(ttl == -1 for ttl in ttls["live"] + ttls["waiting"])


async def test_a_run_cancelled_while_queued_expires_too(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """A queued run that a cancel finishes gets the ttl, as a run finish_run ends does."""
    store = make_store(ttl=60)
    await store.enqueue_run(NewRun(APP, "r", "wf", "{}", None, "q"))
    await store.send_signal(APP, "r", "go", "1")
    cancelled = await store.request_cancel(APP, "r")
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    ttls = await _ttls(client, prefix)
    assert 0 < ttls["run"] <= 60_000
    assert 0 < ttls["signals"] <= 60_000


async def test_expired_runs_leave_index_members_that_prune_drops(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """Index members of expired runs are skipped and removed by prune; listing skips them."""
    store = make_store(ttl=0.05)
    await _finished(store, "short")
    await _gone(client, prefix, "short")
    status_keys = [key async for key in client.scan_iter(match=f"{prefix}:status:*completed")]
    assert len(status_keys) == 1
    assert await client.zcard(status_keys[0]) == 1  # the member outlived its run
    deleted = await store.prune_runs(APP, finished_before=4e9, statuses=["completed"], limit=10)
    assert deleted == 0  # nothing left to delete: the keys expired by themselves
    assert await client.zcard(status_keys[0]) == 0
    assert await client.zcard(f"{prefix}:index:{APP}") == 0
    assert list(await store.list_runs(APP)) == []


async def test_prune_pages_past_runs_that_finished_after_the_cutoff(
    make_store: Callable[..., RedisStore],
) -> None:
    """Runs created before the cutoff but finished after it are kept, and do not stop a prune."""
    store = make_store()
    long_ones = []
    for n in range(700):  # more than one scan page of the status index
        claim = await store.claim_run(NewRun(APP, f"long{n}", "wf", "{}"), owner="a", lease_ttl=30)
        long_ones.append(claim.run)
    old = []
    for n in range(5):
        await _finished(store, f"old{n}")
        old.append(f"old{n}")
    cutoff_run = await store.claim_run(NewRun(APP, "marker", "wf", "{}"), owner="a", lease_ttl=30)
    cutoff = cutoff_run.run.created_at
    for run in long_ones:  # finished after the cutoff, created before it
        await store.finish_run(APP, run.run_id, run.token, "completed")
    assert await store.count_prunable_runs(APP, finished_before=cutoff, statuses=["completed"]) == 5
    assert (
        await store.prune_runs(APP, finished_before=cutoff, statuses=["completed"], limit=100) == 5
    )
    left = {run.run_id for run in await store.list_runs(APP, limit=1000)}
    assert not left & set(old)
    assert len(left) == 701


async def test_a_delete_sent_again_after_it_ran_answers_as_it_did(
    make_store: Callable[..., RedisStore],
) -> None:
    """A client retry of a delete whose reply was lost returns the run, not 'absent'."""
    store = make_store()
    await _finished(store, "r")
    async with await store._connected() as conn:
        script = conn.scripts["delete_run"]
        keys = [
            store._keys.run(APP, "r"),
            store._keys.steps(APP, "r"),
            store._keys.signals(APP, "r"),
            store._keys.deletion(APP, "nonce-1"),
            store._keys.index(APP),
            store._keys.ids(APP),
            *store._keys.statuses(APP),
        ]
        args = ["r", *store._keys.stems(APP)]
        first = await script(keys=keys, args=args)
        again = await script(keys=keys, args=args)
    assert first[0] == again[0] == 1
    assert again[1] == first[1]
    assert await store.get_run(APP, "r") is None
    assert await store.delete_run(APP, "r") is None  # a new call: the run is gone


async def test_deleted_and_pruned_runs_leave_no_listing_members(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """delete_run and prune take a run's id out of every listing set, not only its hash."""

    async def listed() -> set[tuple[str, bytes]]:
        members = set()
        async for key in client.scan_iter(match=f"{prefix}:*"):
            if await client.type(key) == b"zset":
                members |= {(key.decode(), m) for m in await client.zrange(key, 0, -1)}
        return members

    store = make_store()
    for run_id in ("deleted", "pruned"):
        await store.enqueue_run(NewRun(APP, run_id, "wf", "{}", queue="q"))
        (claim,) = await store.claim_queued(
            APP, [QueueLimits("q")], owner="a", lease_ttl=30, limit=1
        )
        await store.finish_run(APP, run_id, claim.run.token, "completed", output="1")
    before = await listed()
    # The run index, the id set, a status index, the workflow's and the queue's.
    assert len([key for key, member in before if member == b"pruned"]) >= 5

    await store.delete_run(APP, "deleted")
    assert (
        await store.prune_runs(APP, finished_before=float("inf"), statuses=("completed",), limit=10)
        == 1
    )
    assert {member for _, member in await listed()} & {b"deleted", b"pruned"} == set()
    await store.close()
