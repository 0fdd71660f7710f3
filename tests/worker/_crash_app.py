"""The app the worker crash tests run in real processes: ``durable worker _crash_app:wf``.

Every task execution and every body start and end is appended to an fsync'd
journal file outside the store, so the test can count what really ran.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from durable import Workflow

CONCURRENCY = int(os.environ.get("CRASH_CONCURRENCY", "5"))
STEPS = 3

wf = Workflow("crash", db=os.environ["CRASH_DB"], lease_ttl=3.0)
# CRASH_RATE="n/seconds" adds a rate limit to the queue.
_rate = os.environ.get("CRASH_RATE")
RATE_LIMIT = None if not _rate else (int(_rate.split("/")[0]), float(_rate.split("/")[1]))
wf.queue("work", concurrency=CONCURRENCY, rate_limit=RATE_LIMIT)


def journal(line: str) -> None:
    fd = os.open(os.environ["CRASH_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@wf.task
async def step(n: int, k: int) -> int:
    journal(f"step {n}:{k} {os.getpid()} {time.time():.6f}")
    await asyncio.sleep(0.05)
    return n * k


@wf.workflow(id="job-{n}", queue="work")
async def job(n: int) -> int:
    journal(f"begin {n} {os.getpid()} {time.time():.6f}")
    total = 0
    for k in range(STEPS):
        total += await step(n, k)
    journal(f"end {n} {os.getpid()} {time.time():.6f}")
    return total


async def _enqueue(count: int) -> None:
    async with wf:
        for n in range(count):
            await job.enqueue(n=n)


async def _start_and_hang(n: int) -> None:
    """start() a run, say so, then hang until killed: a worker must finish it."""
    async with wf:
        await job.start(n=n)
        print("started", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    command, arg = sys.argv[1], int(sys.argv[2])
    asyncio.run(_enqueue(arg) if command == "enqueue" else _start_and_hang(arg))
