"""RedisStore behaviour beyond the shared contract, against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
from tests import _services

from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    RunIdError,
    SerializationError,
    StoreError,
    StoreUnavailableError,
)
from durable.stores.base import LeaseState, NewRun, QueueLimits, StepRecord

if TYPE_CHECKING:
    from durable.stores.redis import RedisStore

pytestmark = pytest.mark.redis


def _redis_store() -> Any:
    """The store module, or a skip (a failure under DURABLE_REQUIRE_SERVICES=1)."""
    return _services.import_driver("durable.stores.redis")


def _step(step_id: str, position: int = 0, status: str = "completed") -> StepRecord:
    failed = status == "failed"
    return StepRecord(
        step_id,
        position,
        step_id,
        "failed" if failed else "completed",
        None if failed else '"ok"',
        '{"type": "E"}' if failed else None,
        1,
        1.0,
        2.0,
    )


@pytest.fixture
async def url() -> str:
    """The test server's URL."""
    return await _services.redis_url()


@pytest.fixture
async def client(url: str) -> AsyncIterator[Any]:
    """A plain client for inspecting keys."""
    conn = _services.import_driver("redis.asyncio").Redis.from_url(url)
    yield conn
    await conn.aclose()


@pytest.fixture
async def prefix(url: str) -> AsyncIterator[str]:
    """A fresh key prefix whose keys are deleted after the test."""
    name = _services.unique_name("redis")
    yield name
    await _services.delete_redis_prefix(url, name)


@pytest.fixture
async def make_store(url: str, prefix: str) -> AsyncIterator[Callable[..., RedisStore]]:
    """A factory of stores on the test prefix, all closed after the test."""
    stores: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        options.setdefault("prefix", prefix)
        store: RedisStore = _redis_store().RedisStore(url, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def _ttls(client: Any, prefix: str) -> dict[str, int]:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    return {key.decode().split(":")[1]: await client.pttl(key) for key in keys}


async def test_running_runs_never_expire(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """No key of a running run carries a TTL, even with finished_ttl set."""
    store = make_store(finished_ttl=60)
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await store.save_step("app", "r", claim.run.token, _step("t"))
    await store.send_signal("app", "r", "go", "1")
    await store.renew_lease("app", "r", claim.run.token, 30)
    await store.request_cancel("app", "r")
    ttls = await _ttls(client, prefix)
    assert set(ttls) == {"run", "steps", "signals", "index", "status", "layout", "wlist", "ids"}
    assert all(ttl == -1 for ttl in ttls.values())


async def test_finished_ttl_applies_only_once_finished(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """finish_run expires the run's keys after finished_ttl; resuming it removes the expiry."""
    store = make_store(finished_ttl=60)
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await store.save_step("app", "r", claim.run.token, _step("t"))
    await store.send_signal("app", "r", "go", "1")
    await store.finish_run("app", "r", claim.run.token, "failed", error='"boom"')
    ttls = await _ttls(client, prefix)
    indexes = ("index", "status", "layout", "wlist", "ids")
    assert [ttls.pop(kind) for kind in indexes] == [-1] * len(indexes)
    assert set(ttls) == {"run", "steps", "signals"}
    assert all(0 < ttl <= 60_000 for ttl in ttls.values())
    resumed = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="b", lease_ttl=30)
    assert resumed.acquired
    assert all(ttl == -1 for ttl in (await _ttls(client, prefix)).values())


async def test_without_finished_ttl_finished_runs_are_kept(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """By default a finished run's keys never expire."""
    store = make_store()
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await store.save_step("app", "r", claim.run.token, _step("t"))
    await store.finish_run("app", "r", claim.run.token, "completed", output="1")
    assert all(ttl == -1 for ttl in (await _ttls(client, prefix)).values())


async def test_expired_runs_disappear_from_listing(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """Once finished_ttl passes, the run is gone from load_run and list_runs and its index entry."""
    store = make_store(finished_ttl=0.1)
    for run_id in ("done", "busy"):
        claim = await store.claim_run(NewRun("app", run_id, "wf", "{}"), owner="a", lease_ttl=30)
    await store.finish_run("app", "done", 1, "completed", output="1")
    await store.send_signal("app", "done", "late", "1")
    await asyncio.sleep(0.25)
    assert await store.load_run("app", "done") is None
    assert await store.read_signal("app", "done", "late", 0) is None
    assert [run.run_id for run in await store.list_runs("app")] == ["busy"]
    assert await client.zrange(f"{prefix}:index:app", 0, -1) == [b"busy"]
    assert [run.run_id for run in await store.list_runs("app", id_prefix="d")] == []
    assert await client.zrange(f"{prefix}:ids:3:app", 0, -1) == [b"busy"]
    assert claim.acquired


async def test_concurrent_claims_acquire_once(make_store: Callable[..., RedisStore]) -> None:
    """Claims racing from many clients: exactly one acquires, for a new and an expired run."""
    stores = [make_store() for _ in range(10)]
    new = NewRun("app", "race", "wf", "{}")
    claims = await asyncio.gather(
        *(
            s.claim_run(new, owner=f"o{i}", lease_ttl=0.1)
            for i, s in enumerate(stores)
            for _ in "ab"
        )
    )
    assert sum(c.acquired for c in claims) == 1
    await asyncio.sleep(0.2)
    claims = await asyncio.gather(
        *(s.claim_run(new, owner=f"n{i}", lease_ttl=30) for i, s in enumerate(stores) for _ in "ab")
    )
    winners = [c for c in claims if c.acquired]
    assert len(winners) == 1
    assert (winners[0].run.token, winners[0].run.attempts) == (2, 2)


async def test_concurrent_step_writes_keep_the_first(
    make_store: Callable[..., RedisStore],
) -> None:
    """Writers racing on one step id all get back the single record that was stored first."""
    stores = [make_store() for _ in range(5)]
    claim = await stores[0].claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    steps = [StepRecord("t", 0, "t", "completed", str(i), None, 1, 1.0, 2.0) for i in range(20)]
    saved = await asyncio.gather(
        *(
            stores[i % 5].save_step("app", "r", claim.run.token, step)
            for i, step in enumerate(steps)
        )
    )
    assert len({s.step for s in saved}) == 1
    loaded = await stores[0].load_run("app", "r")
    assert loaded is not None
    assert loaded[1] == (saved[0].step,)


async def test_concurrent_signals_get_distinct_indexes(
    make_store: Callable[..., RedisStore],
) -> None:
    """Signals sent at once get the indexes 0..n-1, each readable at its own index."""
    stores = [make_store() for _ in range(4)]
    indexes = await asyncio.gather(
        *(stores[i % 4].send_signal("app", "r", "go", str(i)) for i in range(50))
    )
    assert sorted(indexes) == list(range(50))
    for i, index in enumerate(indexes):
        assert await stores[0].read_signal("app", "r", "go", index) == str(i)


async def test_restart_drops_failed_steps_atomically(
    make_store: Callable[..., RedisStore],
) -> None:
    """Resuming a failed run deletes its failed steps and keeps completed ones, in one claim."""
    store = make_store()
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await store.save_step("app", "r", claim.run.token, _step("ok", 0))
    await store.save_step("app", "r", claim.run.token, _step("bad", 1, "failed"))
    await store.finish_run("app", "r", claim.run.token, "failed", error='"e"')
    again = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="b", lease_ttl=30)
    assert again.acquired
    assert [s.step_id for s in again.steps] == ["ok"]
    assert again.run.error is None


async def test_lease_times_come_from_the_redis_clock(
    make_store: Callable[..., RedisStore], client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lease expiry follows the server's TIME even when the local clock is an hour off."""
    store = make_store()
    await store.open()
    seconds, micros = await client.time()
    before = seconds + micros / 1e6
    monkeypatch.setattr(time, "time", lambda: before + 3600)
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    seconds, micros = await client.time()
    after = seconds + micros / 1e6
    assert claim.run.lease_expires_at is not None
    assert before + 30 <= claim.run.lease_expires_at <= after + 30
    stolen = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="b", lease_ttl=30)
    assert not stolen.acquired


async def test_lease_batches_span_several_script_calls(
    make_store: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch longer than one script call's share is renewed whole, each run answered."""
    monkeypatch.setattr(_redis_store(), "_RENEW_CHUNK", 3)
    store = make_store()
    tokens: dict[str, int] = {}
    for i in range(8):
        claim = await store.claim_run(NewRun("app", f"r{i}", "wf", "{}"), owner="a", lease_ttl=1)
        tokens[f"r{i}"] = claim.run.token
    await store.request_cancel("app", "r4")
    tokens["r6"] += 1  # a stale token
    states = await store.renew_leases("app", [*tokens.items(), ("absent", 1)], 600)
    assert states == {
        **dict.fromkeys(tokens, LeaseState.OWNED),
        "r4": LeaseState.CANCEL_REQUESTED,
        "r6": LeaseState.LOST,
        "absent": LeaseState.LOST,
    }
    for run_id in tokens:
        run = await store.get_run("app", run_id)
        assert run is not None
        assert run.lease_expires_at is not None
        renewed = run.lease_expires_at - run.updated_at == pytest.approx(600, abs=1)
        assert renewed is (run_id != "r6")


async def test_keys_are_unambiguous_and_prefixed(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """Ids containing the separator never collide, and every key starts with the prefix."""
    store = make_store()
    first = await store.claim_run(NewRun("a:1", "x", "wf", "1"), owner="o", lease_ttl=30)
    second = await store.claim_run(NewRun("a", "1:x", "wf", "2"), owner="o", lease_ttl=30)
    assert first.acquired
    assert second.acquired
    other = make_store(prefix=prefix + "_other")
    assert await other.get_run("a", "1:x") is None
    keys = [key async for key in client.scan_iter(match="*")]
    ours = [key for key in keys if key.startswith(prefix.encode() + b":")]
    # Per app: a run hash, the run index, the running runs' index, the layout,
    # the workflow's run list and the id list.
    assert len(ours) == 12
    assert not any(key.startswith(prefix.encode() + b"_other") for key in keys)


async def test_retried_scripts_return_their_first_result(
    make_store: Callable[..., RedisStore],
) -> None:
    """Re-running a claim, finish or signal script with the same nonce changes nothing."""
    store = make_store()
    await store.open()
    k = store._keys
    run_keys = [k.run("app", "r"), k.steps("app", "r"), k.signals("app", "r")]
    claim_keys = [*run_keys, k.index("app"), *k.statuses("app"), k.layout("app")]
    claim_keys += [k.by_workflow("app", "wf"), k.ids("app")]
    claim_args = ["r", "wf", "{}", "0", "", "a", "30.0", "0", "", "0", "nonce-1", "3"]
    first = await store._script("claim", claim_keys, claim_args)
    second = await store._script("claim", claim_keys, claim_args)
    assert first[0] == second[0] == 1
    run = await store.get_run("app", "r")
    assert run is not None
    assert (run.token, run.attempts) == (1, 1)

    finish_keys = [*run_keys, *k.statuses("app")]
    finish_args = ["1", "completed", "1", "42", "0", "", "nonce-2", "", "r"]
    assert await store._script("finish", finish_keys, finish_args) is not None
    assert await store._script("finish", finish_keys, finish_args) is not None
    with pytest.raises(LeaseLostError):
        await store.finish_run("app", "r", 1, "completed", output="42")

    signal_keys, signal_args = store._signal_call("app", "r", "go", "1", "nonce-3")
    assert await store._script("send_signal", signal_keys, signal_args) == 0
    assert await store._script("send_signal", signal_keys, signal_args) == 0
    assert await store.send_signal("app", "r", "go", "2") == 1


async def test_values_round_trip_exactly(make_store: Callable[..., RedisStore]) -> None:
    """JSON text and ids come back byte-for-byte, including non-ASCII and escapes."""
    store = make_store()
    tricky = '{ "b" : 1,"a":[1.0, 1e3, "\\u0000", "\u2028", "😀", "\\ud800"] }'
    claim = await store.claim_run(NewRun("app", "rün 😀", "wf", tricky), owner="ø", lease_ttl=30)
    step = StepRecord("t", 0, "t", "completed", tricky, None, 1, 1.1, 1795615736.5646151)
    saved = await store.save_step("app", "rün 😀", claim.run.token, step)
    assert saved.step == step
    loaded = await store.load_run("app", "rün 😀")
    assert loaded is not None
    assert loaded[0].inputs == tricky
    assert loaded[0].owner == "ø"
    assert loaded[1] == (step,)


async def test_nul_characters_are_rejected(make_store: Callable[..., RedisStore]) -> None:
    """NUL in an id raises RunIdError and in JSON text SerializationError, as on PostgreSQL."""
    store = make_store()
    with pytest.raises(RunIdError):
        await store.claim_run(NewRun("app", "r\x00", "wf", "{}"), owner="a", lease_ttl=30)
    with pytest.raises(SerializationError):
        await store.claim_run(NewRun("app", "r", "wf", '"\x00"'), owner="a", lease_ttl=30)
    with pytest.raises(RunIdError):
        await store.send_signal("app", "r", "n\x00", "1")


async def test_unreachable_server_raises_store_unavailable() -> None:
    """A store whose server refuses connections raises StoreUnavailableError."""
    store = _redis_store().RedisStore("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailableError):
        await store.open()
    with pytest.raises(StoreUnavailableError):
        await store.get_run("app", "r")
    await store.close()


def test_options_and_urls_are_validated() -> None:
    """Bad prefixes, TTLs and URL schemes raise ConfigurationError; good URLs build stores."""
    RedisStore, from_url = _redis_store().RedisStore, _redis_store().from_url
    with pytest.raises(ConfigurationError):
        RedisStore(prefix="")
    with pytest.raises(ConfigurationError):
        RedisStore(finished_ttl=0)
    with pytest.raises(ConfigurationError):
        from_url("http://localhost")
    assert from_url("rediss://h:1/2").url == "rediss://h:1/2"


def test_a_url_may_name_the_key_prefix() -> None:
    """``?prefix=`` sets the key prefix and is not passed on to the client."""
    from_url = _redis_store().from_url
    store = from_url("redis://h:1/2?prefix=shop&ssl_cert_reqs=none")
    assert (store.prefix, store.url) == ("shop", "redis://h:1/2?ssl_cert_reqs=none")
    assert from_url("redis://h:1/2").prefix == "durable"


_STATUSES = ("running", "completed", "failed", "cancelled")


async def _status_index(store: RedisStore, client: Any, app: str = "app") -> dict[str, list[str]]:
    """Every status index of ``app``, newest first, as run ids."""
    found: dict[str, list[str]] = {}
    for status in _STATUSES:
        ids = await client.zrevrange(store._keys.status(app, status), 0, -1)
        found[status] = [raw.decode() for raw in ids]
    return found


async def _fill(store: RedisStore, completed: int, running: int) -> list[str]:
    """``completed`` finished runs, then ``running`` running ones; the running ids, oldest first."""
    for i in range(completed):
        claim = await store.claim_run(
            NewRun("app", f"done{i}", "wf", "{}"), owner="a", lease_ttl=30
        )
        await store.finish_run("app", f"done{i}", claim.run.token, "completed", output="1")
    ids = [f"busy{i}" for i in range(running)]
    for run_id in ids:
        await store.claim_run(NewRun("app", run_id, "wf", "{}"), owner="a", lease_ttl=30)
    return ids


def _count_run_reads(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run hashes list_runs reads from now on, through the store's pipelines."""
    read: list[str] = []
    assert store._conn is not None
    client = store._conn.client
    make_pipeline = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        hgetall = pipe.hgetall

        def counted(key: str) -> Any:
            read.append(key)
            return hgetall(key)

        pipe.hgetall = counted
        return pipe

    monkeypatch.setattr(client, "pipeline", pipeline)
    return read


async def test_listing_by_status_reads_only_runs_of_that_status(
    make_store: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """list_runs(status="running") returns the running runs newest first, reading no other run."""
    store = make_store()
    running = await _fill(store, completed=300, running=3)
    read = _count_run_reads(store, monkeypatch)
    listed = await store.list_runs("app", status="running", limit=1_000_000)
    assert [run.run_id for run in listed] == running[::-1]
    assert sorted(read) == sorted(store._keys.run("app", run_id) for run_id in running)
    read.clear()
    assert [run.run_id for run in await store.list_runs("app", status="running", limit=2)] == [
        "busy2",
        "busy1",
    ]
    assert len(read) <= 3
    done = await store.list_runs("app", status="completed", workflow="wf", limit=5)
    assert [run.run_id for run in done] == [f"done{i}" for i in range(299, 294, -1)]


async def test_status_index_follows_every_transition(
    make_store: Callable[..., RedisStore], client: Any
) -> None:
    """Claim, takeover, release, cancel, finish, restart and resume each keep one entry per run."""
    store = make_store()
    first = await store.claim_run(NewRun("app", "a", "wf", "{}"), owner="o", lease_ttl=0.05)
    second = await store.claim_run(NewRun("app", "b", "wf", "{}"), owner="o", lease_ttl=30)
    third = await store.claim_run(NewRun("app", "c", "wf", "{}"), owner="o", lease_ttl=30)
    assert await _status_index(store, client) == {
        "running": ["c", "b", "a"],
        "completed": [],
        "failed": [],
        "cancelled": [],
    }
    await asyncio.sleep(0.1)
    takeover = await store.claim_run(NewRun("app", "a", "wf", "{}"), owner="p", lease_ttl=30)
    assert takeover.acquired
    await store.release_run("app", "b", second.run.token)
    await store.request_cancel("app", "c")  # running: only flagged
    assert (await _status_index(store, client))["running"] == ["c", "b", "a"]
    await store.finish_run("app", "c", third.run.token, "cancelled", error='"c"')
    await store.finish_run("app", "a", takeover.run.token, "failed", error='"e"')
    b = await store.claim_run(NewRun("app", "b", "wf", "{}"), owner="o", lease_ttl=30)
    await store.finish_run("app", "b", b.run.token, "completed", output="1")
    assert await _status_index(store, client) == {
        "running": [],
        "completed": ["b"],
        "failed": ["a"],
        "cancelled": ["c"],
    }
    await store.request_cancel("app", "a")  # failed: becomes cancelled
    assert (await _status_index(store, client))["cancelled"] == ["c", "a"]
    resumed = await store.claim_run(
        NewRun("app", "a", "wf", "{}"), owner="o", lease_ttl=30, resume=True
    )
    assert resumed.acquired
    assert await _status_index(store, client) == {
        "running": ["a"],
        "completed": ["b"],
        "failed": [],
        "cancelled": ["c"],
    }
    assert first.run.created_at == resumed.run.created_at
    listed = {s: [r.run_id for r in await store.list_runs("app", status=s)] for s in _STATUSES}
    assert listed == await _status_index(store, client)


async def test_status_index_is_rebuilt_for_data_written_without_it(
    make_store: Callable[..., RedisStore], client: Any, prefix: str
) -> None:
    """An app written before status indexes existed gets them built when first listed by status."""
    store = make_store()
    running = await _fill(store, completed=5, running=2)
    claim = await store.claim_run(NewRun("other", "x", "wf", "{}"), owner="a", lease_ttl=30)
    await store.finish_run("other", "x", claim.run.token, "failed", error='"e"')
    await store.close()
    stale = [key async for key in client.scan_iter(match=f"{prefix}:status:*")]
    assert stale
    await client.delete(*stale, store._keys.layout("app"), store._keys.layout("other"))
    reopened = make_store()
    listed = await reopened.list_runs("app", status="running")
    assert [run.run_id for run in listed] == running[::-1]
    assert (await _status_index(reopened, client))["completed"] == [
        f"done{i}" for i in range(4, -1, -1)
    ]
    assert (await _status_index(reopened, client, "other"))["failed"] == []  # built on first use
    assert [run.run_id for run in await reopened.list_runs("other", status="failed")] == ["x"]
    assert await client.get(store._keys.layout("app")) == b"3"


async def test_a_newer_layout_is_refused(
    make_store: Callable[..., RedisStore], client: Any
) -> None:
    """An app whose keys a newer version laid out is not listed by status with the old rules."""
    store = make_store()
    await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await client.set(store._keys.layout("app"), "4")
    with pytest.raises(StoreError, match="newer"):
        await make_store().list_runs("app", status="running")


async def _queue_keys(store: RedisStore, client: Any, queue: str = "q") -> dict[str, list[str]]:
    """The members of a queue's keys: ready and delayed in order, the others sorted."""
    ready, delayed, running, starts, _, _ = store._keys.queues("app", queue)
    found = {
        "ready": [m[16:] for m in await client.zrange(ready, 0, -1)],
        "delayed": [m[16:] for m in await client.zrange(delayed, 0, -1)],
        "running": sorted(await client.smembers(running)),
        "starts": sorted(await client.zrange(starts, 0, -1)),
    }
    return {kind: [m.decode() for m in members] for kind, members in found.items()}


async def test_queue_keys_follow_every_transition(
    make_store: Callable[..., RedisStore], client: Any
) -> None:
    """Enqueue, claim_queued, claim_run, finish, cancel and restart keep the queue's keys exact."""
    store = make_store()
    for run_id, priority in (("a", 2), ("b", 1), ("c", 2), ("d", 0)):
        await store.enqueue_run(NewRun("app", run_id, "wf", "{}", queue="q", priority=priority))
    await store.enqueue_run(NewRun("app", "later", "wf", "{}", queue="q", not_before=1e12))
    assert await _queue_keys(store, client) == {
        "ready": ["d", "b", "a", "c"],
        "delayed": ["later"],
        "running": [],
        "starts": [],
    }
    queued = await client.zrange(store._keys.status("app", "queued"), 0, -1)
    assert sorted(queued) == [b"a", b"b", b"c", b"d", b"later"]
    limits = [QueueLimits("q", rate_limit=(10, 60))]
    claims = await store.claim_queued("app", limits, owner="w", lease_ttl=30, limit=2)
    direct = await store.claim_run(NewRun("app", "c", "wf", "{}"), owner="x", lease_ttl=30)
    assert direct.acquired
    await store.request_cancel("app", "later")
    assert await _queue_keys(store, client) == {
        "ready": ["a"],
        "delayed": [],
        "running": ["b", "c", "d"],
        "starts": ["b:1", "c:1", "d:1"],
    }
    for claim in claims:
        await store.finish_run("app", claim.run.run_id, claim.run.token, "failed", error='"e"')
    assert (await _queue_keys(store, client))["running"] == ["c"]
    again = await store.claim_run(NewRun("app", "d", "wf", "{}"), owner="y", lease_ttl=30)
    assert (again.acquired, again.run.queue, again.run.token) == (True, "q", 2)
    assert (await _queue_keys(store, client))["running"] == ["c", "d"]
    assert await client.zrange(store._keys.status("app", "queued"), 0, -1) == [b"a"]
    cancelled = await client.zrange(store._keys.status("app", "cancelled"), 0, -1)
    assert cancelled == [b"later"]


async def test_queue_scripts_retried_return_their_first_result(
    make_store: Callable[..., RedisStore],
) -> None:
    """Re-running an enqueue or claim_queued script with the same nonce changes nothing."""
    store = make_store()
    await store.open()
    k = store._keys
    enqueue_keys = [*k.creation("app", "r"), *k.queues("app", "q"), k.queue_names("app")]
    enqueue_keys += [k.by_workflow("app", "wf"), k.ids("app"), k.by_queue("app", "q")]
    enqueue_args = [
        "r",
        "wf",
        "{}",
        "0",
        "",
        "q",
        "0",
        "0",
        "",
        "nonce-1",
        "3",
        k.work_channel(),
        "app",
    ]
    for _ in range(2):
        created, _ = await store._script("enqueue", enqueue_keys, enqueue_args)
        assert created == 1
    _, created = await store.enqueue_run(NewRun("app", "r", "wf", "{}", queue="q"))
    assert not created
    await store.enqueue_run(NewRun("app", "s", "wf", "{}", queue="q"))
    claim_keys = [*k.statuses("app"), k.queue_claim("app", "nonce-2"), *k.queues("app", "q")]
    claim_args = ["w", "30.0", "1", "nonce-2", *k.stems("app"), "", "", ""]
    first = await store._script("claim_queued", claim_keys, claim_args)
    second = await store._script("claim_queued", claim_keys, claim_args)
    assert [reply[0] for reply in first] == [reply[0] for reply in second] == [b"r"]
    assert first == second
    still = await store.get_run("app", "s")
    assert still is not None
    assert still.status == "queued"


async def test_runs_written_before_queues_read_with_defaults(
    make_store: Callable[..., RedisStore], client: Any
) -> None:
    """A run hash without the queue fields reads as a run of no queue, never started."""
    store = make_store()
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    await client.hdel(store._keys.run("app", "r"), "started")
    run = await store.get_run("app", "r")
    assert run is not None
    assert (run.queue, run.priority, run.not_before, run.started_at) == (None, 0, None, None)
    done = await store.finish_run("app", "r", claim.run.token, "completed", output="1")
    assert done.status == "completed"


async def _connections_named(client: Any, name: str) -> int:
    return sum(1 for conn in await client.client_list() if conn.get("name") == name)


async def test_a_command_in_flight_when_the_store_closes_leaves_no_connection_open(
    url: str, prefix: str, client: Any
) -> None:
    """A command another task started before close() ends, then its connection is closed too.

    Closing under it would make the client retry on a new connection of the
    closed pool, left open until collected ("unclosed Connection").
    """
    name = _services.unique_name("conn")
    store = _redis_store().RedisStore(
        f"{url}{'&' if '?' in url else '?'}client_name={name}", prefix=prefix
    )
    await store.open()
    # The server answers no command for a moment: the read below stays in flight.
    await client.client_pause(300, all=True)
    reading = asyncio.create_task(store.get_run("app", "r"))
    await asyncio.sleep(0.05)
    await store.close()
    assert await reading is None
    for _ in range(100):  # the server may see the connection close a moment later
        if not await _connections_named(client, name):
            break
        await asyncio.sleep(0.02)
    assert await _connections_named(client, name) == 0


async def _mixed(store: RedisStore) -> None:
    """200 runs of a bulk workflow, and a few others: by workflow, queue and id prefix."""
    for i in range(200):
        await store.claim_run(NewRun("app", f"bulk{i}", "bulk", "{}"), owner="a", lease_ttl=30)
    for run_id in ("rare-1", "rare-2"):
        await store.claim_run(NewRun("app", run_id, "rare", "{}"), owner="a", lease_ttl=30)
    for run_id in ("job-1", "job-2"):
        await store.enqueue_run(NewRun("app", run_id, "jobs", "{}", queue="q"))


async def test_listing_by_workflow_queue_and_prefix_reads_only_matching_runs(
    make_store: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each filter has its sorted set: listing by it reads no run of another workflow or queue."""
    store = make_store()
    await _mixed(store)
    read = _count_run_reads(store, monkeypatch)

    async def listed(**filters: Any) -> list[str]:
        read.clear()
        return [run.run_id for run in await store.list_runs("app", **filters)]

    assert await listed(workflow="rare") == ["rare-2", "rare-1"]
    assert sorted(read) == sorted(store._keys.run("app", r) for r in ("rare-1", "rare-2"))
    assert await listed(queue="q") == ["job-2", "job-1"]
    assert sorted(read) == sorted(store._keys.run("app", r) for r in ("job-1", "job-2"))
    assert await listed(id_prefix="rare-") == ["rare-2", "rare-1"]
    assert len(read) == 2
    assert await listed(id_prefix="bulk1", limit=3) == ["bulk199", "bulk198", "bulk197"]
    assert len(read) == 111  # bulk1, bulk10-19, bulk100-199: the prefix's runs only


async def test_listing_sets_are_rebuilt_for_data_written_without_them(
    make_store: Callable[..., RedisStore], client: Any
) -> None:
    """Keys of layout 2 (no id, workflow or queue lists) get them on first use, queue names too."""
    store = make_store()
    await _mixed(store)
    k = store._keys
    await client.delete(
        k.ids("app"),
        k.by_workflow("app", "bulk"),
        k.by_workflow("app", "rare"),
        k.by_workflow("app", "jobs"),
        k.by_queue("app", "q"),
        k.queue_names("app"),
    )
    await client.set(k.layout("app"), "2")
    reopened = make_store()
    assert [r.run_id for r in await reopened.list_runs("app", workflow="rare")] == [
        "rare-2",
        "rare-1",
    ]
    assert [r.run_id for r in await reopened.list_runs("app", queue="q")] == ["job-2", "job-1"]
    assert len(await reopened.list_runs("app", id_prefix="bulk", limit=1000)) == 200
    [stats] = await reopened.queue_stats("app")
    assert (stats.queue, stats.ready, stats.running) == ("q", 2, 0)
    assert await client.get(k.layout("app")) == b"3"
