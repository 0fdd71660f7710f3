"""10,000 runs each sleeping 2 s under one worker: they park, wake and all complete."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path

import pytest

from durable import Workflow

pytestmark = pytest.mark.asyncio

RUNS = 10_000
CONCURRENCY = 64


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_ten_thousand_sleeping_runs_park_and_complete(tmp_path: Path) -> None:
    """Far more runs sleep at once than the worker has slots; each wakes and completes once."""
    wf = Workflow("many", db=tmp_path / "many.db", park_after=0.5)
    woke: dict[int, int] = {}

    @wf.task
    async def after(n: int) -> int:
        woke[n] = woke.get(n, 0) + 1
        return n

    @wf.workflow(id="sleeper-{n}", queue="sleepers")
    async def sleeper(n: int) -> int:
        await wf.sleep(2.0)
        return await after(n)

    try:
        async with wf:
            for start in range(0, RUNS, 500):
                await asyncio.gather(*(sleeper.enqueue(n) for n in range(start, start + 500)))
            gc.collect()
            idle = rss_kb()
            worker = asyncio.create_task(
                wf.serve(concurrency=CONCURRENCY, poll_interval=0.1, handle_signals=False)
            )
            most_waiting = most_active = 0
            try:
                while len(woke) < RUNS:
                    waiting = await wf.list_runs(status="waiting", limit=RUNS)
                    most_waiting = max(most_waiting, len(waiting))
                    most_active = max(most_active, wf._executor.active_runs)
                    await asyncio.sleep(0.2)
                    assert not worker.done(), "the worker stopped"
                gc.collect()
                peak = rss_kb()
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            completed = await wf.list_runs(status="completed", limit=RUNS + 1)
    finally:
        await wf.close()
    print(
        f"\n{RUNS} parked runs: worker RSS {idle / 1024:.1f} MB idle, "
        f"{peak / 1024:.1f} MB once all had woken; at most {most_waiting} parked "
        f"and {most_active} in memory at once"
    )
    assert len(completed) == RUNS
    assert woke == dict.fromkeys(range(RUNS), 1)
    # Parked runs held no slot: many more slept at once than the worker runs.
    assert most_waiting > CONCURRENCY
    assert most_active <= CONCURRENCY
