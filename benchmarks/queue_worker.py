"""A worker process of the queue benchmarks Q and L, started by ``workloads.py``.

Usage: ``python benchmarks/queue_worker.py JSON_PARAMS``, with ``kind`` one of

* ``durable``: the app of :func:`make_app`, served as ``python -m durable
  worker`` serves it (``wf.serve(concurrency=, poll_interval=)``) until SIGTERM;
* ``raw_pg``: one asyncpg connection claiming one row of a ``jobs`` table at
  a time (``SELECT ... FOR UPDATE SKIP LOCKED``, mark done, commit) until
  none is left;
* ``raw_sqlite``: the same with stdlib sqlite3 (``BEGIN IMMEDIATE``, synchronous FULL).

The process prints ``ready`` once connected; with ``gate`` it then waits for
a line on stdin before it starts, so that process start-up is not timed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from typing import Any

APP = "qbench"
QUEUE = "bench"


def make_store(store: dict[str, Any]) -> Any:
    """The durable store ``store`` describes: ``{"kind": "pg"|"sqlite", ...}``."""
    if store["kind"] == "pg":
        from durable.stores.postgres import PostgresStore

        return PostgresStore(store["dsn"], schema=store["schema"], min_size=1, max_size=10)
    from durable import SQLiteStore

    return SQLiteStore(store["path"])


def make_app(store: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The benchmark app and its two workflows: ``(wf, noop, stamp)``.

    ``noop`` has no step: a queued run is claimed, executed and finished.
    ``stamp``'s first (and only) step returns ``time.time()`` when it runs.
    """
    from durable import Workflow

    wf = Workflow(APP, db=make_store(store))
    wf.queue(QUEUE)

    @wf.task
    async def now() -> float:
        return time.time()

    @wf.workflow(queue=QUEUE)
    async def noop(k: int) -> int:
        return k

    @wf.workflow(queue=QUEUE)
    async def stamp(k: int) -> float:
        return await now()

    return wf, noop, stamp


async def _gate(params: dict[str, Any]) -> None:
    print("ready", flush=True)
    if params.get("gate"):
        await asyncio.to_thread(sys.stdin.readline)


async def serve_durable(params: dict[str, Any]) -> None:
    wf, _, _ = make_app(params["store"])
    async with wf:
        await _gate(params)
        await wf.serve(
            queues=[QUEUE],
            concurrency=params.get("concurrency", 16),
            poll_interval=params.get("poll_interval", 1.0),
            handle_signals=True,
        )


_PG_CLAIM = "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
_PG_DONE = "UPDATE jobs SET status = 'done', done_at = $2 WHERE id = $1"


async def serve_raw_pg(params: dict[str, Any]) -> None:
    import asyncpg

    conn = await asyncpg.connect(params["dsn"], server_settings={"search_path": params["schema"]})
    try:
        claim = await conn.prepare(_PG_CLAIM)
        done = await conn.prepare(_PG_DONE)
        await _gate(params)
        while True:
            async with conn.transaction():
                job = await claim.fetchval()
                if job is None:
                    return
                await done.fetch(job, time.time())
    finally:
        await conn.close()


async def serve_raw_sqlite(params: dict[str, Any]) -> None:
    db = sqlite3.connect(params["path"], isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode = WAL").fetchone()
    db.execute("PRAGMA synchronous = FULL")
    await _gate(params)
    try:
        while True:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return
            db.execute(
                "UPDATE jobs SET status = 'done', done_at = ? WHERE id = ?", (time.time(), row[0])
            )
            db.execute("COMMIT")
    finally:
        db.close()


KINDS = {"durable": serve_durable, "raw_pg": serve_raw_pg, "raw_sqlite": serve_raw_sqlite}


def main() -> None:
    params = json.loads(sys.argv[1])
    asyncio.run(KINDS[params["kind"]](params))


if __name__ == "__main__":
    main()
