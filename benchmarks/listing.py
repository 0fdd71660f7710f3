"""Listing at scale: list_runs and queue_stats on a small and on a large store, side by side.

    python benchmarks/listing.py                    # SQLite, 1,000 vs 300,000 runs
    python benchmarks/listing.py --runs 1000000     # the large store's size
    python benchmarks/listing.py --postgres postgresql://postgres@127.0.0.1:5432/test

The large store holds ``--runs`` runs of the app, all completed but the
newest 1,000 (1% of these each failed, running and queued), plus as many of
another app; the small one only those 1,000. Each query is timed as the
median of ``--rounds`` calls; what matters is the ratio large/small: an
index keeps it near 1, a scan makes it grow with the store.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from durable.stores import _sqlite_sql
from durable.stores.base import Store
from durable.stores.sqlite import SQLiteStore

BASE = 1_700_000_000.0
COLUMNS = ["app", "run_id", "workflow", "status", "inputs", "created_at", "updated_at", "queue"]


def rows(app: str, count: int) -> list[tuple[Any, ...]]:
    """``count`` runs: completed ones, then the newest 1,000 with 1% each failed, running, queued.

    A small and a large store then differ by their history of finished runs
    only, which an index must not make listing pay for.
    """
    status = {0: "failed", 1: "running", 2: "queued"}
    history = count - 1000
    return [
        (
            app,
            f"run-{i:07}",
            "even" if i % 2 == 0 else "odd",
            "completed" if i < history else status.get(i % 100, "completed"),
            "{}",
            BASE + i,
            BASE + i,
            "jobs" if i % 100 == 2 else None,
        )
        for i in range(count)
    ]


async def sqlite_store(path: Path, count: int) -> Store:
    store = SQLiteStore(path)
    await store.open()

    def fill(db: Any) -> None:
        with _sqlite_sql._write_transaction(db):
            for app in ("app", "other"):
                db.executemany(
                    "INSERT INTO durable_runs (app, run_id, workflow, status, inputs, created_at,"
                    " updated_at, queue, token, attempts, cancel_requested)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0)",
                    rows(app, count),
                )
        db.execute("ANALYZE")

    await store._call(fill)
    return store


async def postgres_store(dsn: str, count: int) -> tuple[Store, str]:
    from durable.stores.postgres import PostgresStore

    schema = f"durable_bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(dsn, schema=schema)
    await store.open()
    conn = await store._connect()
    try:
        for app in ("app", "other"):
            records = [(*row, 0, 0, False) for row in rows(app, count)]
            columns = [*COLUMNS, "token", "attempts", "cancel_requested"]
            await conn.copy_records_to_table(
                "runs", records=records, columns=columns, schema_name=schema
            )
        await conn.execute(f'ANALYZE "{schema}".runs')
    finally:
        await conn.close()
    return store, schema


def queries(count: int) -> dict[str, Callable[[Store], Awaitable[Any]]]:
    middle = BASE + count // 2
    return {
        "newest 50": lambda s: s.list_runs("app", limit=50),
        "status=failed, 50": lambda s: s.list_runs("app", status="failed", limit=50),
        "status=running, all": lambda s: s.list_runs("app", status="running", limit=10**6),
        "workflow, 50": lambda s: s.list_runs("app", workflow="odd", limit=50),
        "queue, 50": lambda s: s.list_runs("app", queue="jobs", limit=50),
        "id prefix (10 runs)": lambda s: s.list_runs("app", id_prefix="run-00001", limit=50),
        "1 h window, 50": lambda s: s.list_runs("app", since=middle, until=middle + 3600, limit=50),
        "page after the middle": lambda s: s.list_runs(
            "app", after=(middle, f"run-{count // 2:07}"), limit=50
        ),
        "queue_stats": lambda s: s.queue_stats("app"),
    }


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> float:
    await call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def compare(kind: str, small: Store, large: Store, count: int, rounds: int) -> None:
    print(f"\n{kind}: 1,000 runs vs {count:,} runs (median of {rounds})")
    print(f"{'query':<24}{'small ms':>10}{'large ms':>10}{'ratio':>8}")
    small_queries, large_queries = queries(1000), queries(count)
    for name in small_queries:
        a = await timed(lambda q=small_queries[name]: q(small), rounds)
        b = await timed(lambda q=large_queries[name]: q(large), rounds)
        print(f"{name:<24}{a * 1000:>10.3f}{b * 1000:>10.3f}{b / a:>8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", metavar="DSN")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = await sqlite_store(Path(tmp) / "small.db", 1000)
        large = await sqlite_store(Path(tmp) / "large.db", args.runs)
        try:
            await compare("SQLite", small, large, args.runs, args.rounds)
        finally:
            await small.close()
            await large.close()
    if args.postgres:
        import asyncpg

        (small_pg, s1), (large_pg, s2) = (
            await postgres_store(args.postgres, 1000),
            await postgres_store(args.postgres, args.runs),
        )
        try:
            await compare("PostgreSQL", small_pg, large_pg, args.runs, args.rounds)
        finally:
            await small_pg.close()
            await large_pg.close()
            conn = await asyncpg.connect(args.postgres)
            for schema in (s1, s2):
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
