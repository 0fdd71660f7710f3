"""Polling helpers for tests that act on a run while it executes."""

from __future__ import annotations

import asyncio

from durable import Workflow


async def wait_for_run(wf: Workflow, run_id: str, *, steps: int = 0) -> None:
    """Poll the store until the run exists with at least ``steps`` recorded steps."""
    for _ in range(1000):
        loaded = await wf.store.load_run(wf.name, run_id)
        if loaded is not None and len(loaded[1]) >= steps:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id!r} never reached {steps} recorded steps")
