"""Scale: claims, recovery and listing on a small and on a large store, side by side.

    python benchmarks/listing.py                    # SQLite, 1,000 vs 1,000,000 runs
    python benchmarks/listing.py --runs 300000      # the large store's size
    python benchmarks/listing.py --postgres postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/listing.py --redis redis://127.0.0.1:6379/0

The large store holds ``--runs`` runs of the app, all finished but the
newest 1,000 (1% of these each failed, running and queued), plus as many of
another app; the small one only those 1,000. Nine runs in ten are of the
queue "jobs", finished ones with their start time. Rows are bulk-inserted
(one SQLite transaction, PostgreSQL COPY, then ANALYZE; on Redis, pipelined
writes of the keys the store's scripts would leave, under a prefix of its own,
deleted afterwards).

Timed, as the median of ``--rounds`` calls each: ``list_runs`` with each
filter, ``queue_stats``, a worker's recovery pass (its ``list_runs`` of
running runs; ``Workflow.recover`` lists them all), and ``claim_queued`` of
one run, plain, with a concurrency cap and with a rate limit (each timed
claim finds one run enqueued untimed just before). What matters is the
ratio large/small: an index keeps it near 1, a scan makes it grow with the
store.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from durable.stores import _sqlite_sql
from durable.stores.base import NewRun, QueueLimits, Store
from durable.stores.sqlite import SQLiteStore

BASE = 1_700_000_000.0
COLUMNS = [
    "app",
    "run_id",
    "workflow",
    "status",
    "inputs",
    "created_at",
    "updated_at",
    "queue",
    "started_at",
]

Call = Callable[[Store], Awaitable[Any]]
Drop = Callable[[], Awaitable[None]]  # removes what a store's fill wrote


def rows(app: str, count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` runs: finished ones, then the newest 1,000 with 1% each failed, running, queued.

    A small and a large store then differ by their history of finished runs
    only, which an index must not make claims or listing pay for. Generated
    lazily: a million tuples need not sit in memory before the insert.
    """
    status = {0: "failed", 1: "running", 2: "queued"}
    history = count - 1000
    for i in range(count):
        state = "completed" if i < history else status.get(i % 100, "completed")
        yield (
            app,
            f"run-{i:07}",
            "even" if i % 2 == 0 else "odd",
            state,
            "{}",
            BASE + i,
            BASE + i,
            None if i % 10 == 5 else "jobs",
            None if state == "queued" else BASE + i,
        )


async def sqlite_store(path: Path, count: int) -> Store:
    store = SQLiteStore(path)
    await store.open()

    def fill(db: Any) -> None:
        # seq, the enqueue order, is given to every run of a queue, as enqueue_run does.
        seq = itertools.count(1)
        with _sqlite_sql._write_transaction(db):
            for app in ("app", "other"):
                db.executemany(
                    "INSERT INTO durable_runs (app, run_id, workflow, status, inputs, created_at,"
                    " updated_at, queue, started_at, seq, token, attempts, cancel_requested)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0)",
                    ((*row, None if row[7] is None else next(seq)) for row in rows(app, count)),
                )
        db.execute("ANALYZE")

    await store._call(fill)
    return store


async def postgres_store(dsn: str, count: int) -> tuple[Store, Drop]:
    import asyncpg

    from durable.stores.postgres import PostgresStore

    schema = f"durable_bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(dsn, schema=schema)
    await store.open()
    conn = await store._connect()
    try:
        for app in ("app", "other"):
            records = ((*row, 0, 0, False) for row in rows(app, count))
            columns = [*COLUMNS, "token", "attempts", "cancel_requested"]
            await conn.copy_records_to_table(
                "runs", records=records, columns=columns, schema_name=schema
            )
        await conn.execute(f'ANALYZE "{schema}".runs')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()

    return store, drop


async def redis_store(url: str, count: int) -> tuple[Store, Drop]:
    """A Redis store under a fresh prefix, its keys as enqueue, claim and finish leave them.

    Save the starts of a queue (qstarts), which a claim trims to its rate
    window: the fill's starts are all years old.
    """
    import redis

    from durable.stores import redis as redis_module

    prefix = f"durable_bench_{uuid.uuid4().hex[:8]}"
    store = redis_module.RedisStore(url, prefix=prefix)
    await store.open()
    keys = store._keys
    client = redis.Redis.from_url(url)
    try:
        for app in ("app", "other"):
            client.set(keys.layout(app), redis_module._LAYOUT_VERSION)
            qseq = keys.queue("qseq", app, "jobs")
            pipe = client.pipeline(transaction=False)
            for n, (
                _,
                run_id,
                workflow,
                status,
                inputs,
                created,
                updated,
                queue,
                started,
            ) in enumerate(rows(app, count), 1):
                at = f"{created:.17g}"
                fields = {
                    "workflow": workflow,
                    "status": status,
                    "inputs": inputs,
                    "token": "0",  # as the SQL stores' fill: the same runs everywhere
                    "attempts": "0",
                    "cancel": "0",
                    "created": at,
                    "updated": f"{updated:.17g}",
                }
                if started is not None:
                    fields["started"] = f"{started:.17g}"
                if queue is not None:
                    fields.update(queue=queue, priority="0")
                    pipe.sadd(keys.queue_names(app), queue)
                    pipe.zadd(keys.by_queue(app, queue), {run_id: created})
                if status == "queued":
                    member = f"{n:016x}{run_id}"
                    fields["qmember"] = member
                    pipe.zadd(keys.queue("qready", app, "jobs"), {member: 0})
                    pipe.set(qseq, n)
                if status == "running" and queue is not None:
                    pipe.sadd(keys.queue("qrunning", app, queue), run_id)
                pipe.hset(keys.run(app, run_id), mapping=fields)
                pipe.zadd(keys.index(app), {run_id: created})
                pipe.zadd(keys.status(app, status), {run_id: created})
                pipe.zadd(keys.by_workflow(app, workflow), {run_id: created})
                pipe.zadd(keys.ids(app), {run_id: 0})
                if n % 5000 == 0:
                    pipe.execute()
            pipe.execute()
    finally:
        client.close()

    async def drop() -> None:
        drop_redis_prefix(url, prefix)

    return store, drop


def drop_redis_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
            batch.append(key)
            if len(batch) == 10_000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()


def queries(count: int) -> dict[str, Call]:
    middle = BASE + count // 2
    return {
        "newest 50": lambda s: s.list_runs("app", limit=50),
        "status=failed, 50": lambda s: s.list_runs("app", status="failed", limit=50),
        "status=running, all": lambda s: s.list_runs("app", status="running", limit=10**6),
        "recovery pass": lambda s: s.list_runs("app", status="running", limit=1000),
        "workflow, 50": lambda s: s.list_runs("app", workflow="odd", limit=50),
        "queue, 50": lambda s: s.list_runs("app", queue="jobs", limit=50),
        "id prefix (10 runs)": lambda s: s.list_runs("app", id_prefix="run-00001", limit=50),
        "1 h window, 50": lambda s: s.list_runs("app", since=middle, until=middle + 3600, limit=50),
        "page after the middle": lambda s: s.list_runs(
            "app", after=(middle, f"run-{count // 2:07}"), limit=50
        ),
        "queue_stats": lambda s: s.queue_stats("app"),
    }


# Caps no claim reaches: each claim still counts the queue's running runs or
# recent starts from their index, then starts one run.
CLAIMS = {
    "claim 1": QueueLimits("jobs"),
    "claim 1, concurrency cap": QueueLimits("jobs", concurrency=10**6),
    "claim 1, rate limit": QueueLimits("jobs", rate_limit=(10**6, 3600.0)),
}


def claim(limits: QueueLimits) -> tuple[Call, Call]:
    """An untimed enqueue and the timed claim that must start one run."""
    ids = (f"queued-{uuid.uuid4().hex}" for _ in itertools.count())

    async def enqueue(store: Store) -> None:
        await store.enqueue_run(NewRun("app", next(ids), "even", "{}", queue="jobs"))

    async def take(store: Store) -> None:
        claims = await store.claim_queued(
            "app", [limits], owner="bench-worker", lease_ttl=600.0, limit=1
        )
        if len(claims) != 1:
            raise RuntimeError(f"a claim started {len(claims)} runs, not 1")

    return enqueue, take


async def timed(
    call: Callable[[], Awaitable[Any]],
    rounds: int,
    setup: Callable[[], Awaitable[Any]] | None = None,
) -> float:
    samples = []
    for _ in range(rounds + 1):  # the first call warms caches and plans, untimed
        if setup is not None:
            await setup()
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:])


def line(name: str, small: float, large: float) -> None:
    print(f"{name:<26}{small * 1000:>10.3f}{large * 1000:>10.3f}{large / small:>8.2f}")


async def compare(kind: str, small: Store, large: Store, count: int, rounds: int) -> None:
    print(f"\n{kind}: 1,000 runs vs {count:,} runs (median of {rounds})")
    print(f"{'query':<26}{'small ms':>10}{'large ms':>10}{'ratio':>8}")
    small_queries, large_queries = queries(1000), queries(count)
    for name in small_queries:
        a = await timed(lambda q=small_queries[name]: q(small), rounds)
        b = await timed(lambda q=large_queries[name]: q(large), rounds)
        line(name, a, b)
    # Last: each claim leaves one more running run in both stores.
    for name, limits in CLAIMS.items():
        enqueue, take = claim(limits)
        a = await timed(partial(take, small), rounds, partial(enqueue, small))
        b = await timed(partial(take, large), rounds, partial(enqueue, large))
        line(name, a, b)


async def side_by_side(
    kind: str, make: Callable[[int], Awaitable[tuple[Store, Drop]]], count: int, rounds: int
) -> None:
    small, drop_small = await make(1000)
    start = time.perf_counter()
    large, drop_large = await make(count)
    print(f"{kind}: filled the large store in {time.perf_counter() - start:.0f} s")
    try:
        await compare(kind, small, large, count, rounds)
    finally:
        for store, drop in ((small, drop_small), (large, drop_large)):
            await store.close()
            await drop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", metavar="DSN")
    parser.add_argument("--redis", metavar="URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:

        async def sqlite(count: int) -> tuple[Store, Drop]:
            async def drop() -> None:
                pass  # the temporary directory goes, files and all

            return await sqlite_store(Path(tmp) / f"{uuid.uuid4().hex}.db", count), drop

        await side_by_side("SQLite", sqlite, args.runs, args.rounds)
    if args.postgres:
        await side_by_side(
            "PostgreSQL", partial(postgres_store, args.postgres), args.runs, args.rounds
        )
    if args.redis:
        await side_by_side("Redis", partial(redis_store, args.redis), args.runs, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
