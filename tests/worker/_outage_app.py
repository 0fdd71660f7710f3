"""The app of the store outage tests: ``durable worker _outage_app:wf`` and the test process.

Every task execution is appended to an fsync'd journal outside the store,
with its start time, so the test can tell whether a committed step re-ran.
"""

from __future__ import annotations

import asyncio
import os
import time

from durable import Workflow

STEPS = 8
STEP_SECONDS = float(os.environ.get("OUTAGE_STEP_SECONDS", "0.5"))

wf = Workflow(os.environ.get("OUTAGE_APP", "outage"), db=os.environ["OUTAGE_DB"])
wf.queue("work", concurrency=4)


def journal(line: str) -> None:
    fd = os.open(os.environ["OUTAGE_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@wf.task
async def step(n: int, k: int) -> int:
    journal(f"job-{n} {k} {os.getpid()} {time.time():.6f}")
    await asyncio.sleep(STEP_SECONDS)
    return n * k


@wf.workflow(id="job-{n}", queue="work")
async def job(n: int) -> int:
    total = 0
    for k in range(STEPS):
        total += await step(n, k)
    return total
