"""Cancellation and inspection: stop a running batch, look at it, resume it.

    python examples/cancel_and_inspect.py

A batch processes five items with a durable pause between them. It is
cancelled while it runs: it stops at its next step boundary and is marked
cancelled, and calling it again raises ``RunCancelledError``. ``wf.get_run``
shows what was done; ``wf.resume`` finishes the rest without redoing
anything; ``wf.list_runs`` lists the app's runs.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from durable import RunInfo, Workflow
from durable.errors import RunCancelledError

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "batches.db")

wf = Workflow("batches", db=DB_PATH)


@wf.task
async def process(item: int) -> int:
    print(f"  task: processing item {item}", flush=True)
    return item * item


@wf.workflow(id="batch-{name}")
async def run_batch(name: str, items: int) -> int:
    total = 0
    for i in range(items):
        total += await process(i, step_id=f"item-{i}")
        await wf.sleep(0.1)
    return total


def show(info: RunInfo) -> None:
    print(f"  run {info.run_id}: {info.status}, {info.attempts} attempt(s), output={info.output}")
    for step in info.steps:
        print(f"    {step.step_id:<22} {step.status:<9} attempts={step.attempts}")


async def main() -> None:
    print(f"database: {DB_PATH}")
    running = asyncio.ensure_future(run_batch("nightly", 5))
    await asyncio.sleep(0.25)
    print("cancelling batch-nightly")
    await wf.cancel("batch-nightly")
    try:
        await running
    except RunCancelledError as exc:
        print(f"the run stopped: {exc}")
    show(await wf.get_run("batch-nightly"))
    try:
        await run_batch("nightly", 5)
    except RunCancelledError:
        print("calling it again raises RunCancelledError")

    print("resuming batch-nightly")
    print(f"resumed result: {await wf.resume('batch-nightly')}")
    show(await wf.get_run("batch-nightly"))
    print("runs:", [(r.run_id, r.status) for r in await wf.list_runs()])
    await wf.close()


if __name__ == "__main__":
    asyncio.run(main())
