"""Workflow(retention=...): a worker prunes old finished runs in the background."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from tests.worker._serving import serving

from durable import Workflow
from durable.stores.base import FinalStatus
from durable.stores.memory import InMemoryStore

pytestmark = pytest.mark.asyncio


def jobs(wf: Workflow) -> Any:
    @wf.workflow(id="job-{n}", queue="jobs")
    async def job(n: int) -> int:
        return n

    return job


async def run_ids(wf: Workflow) -> set[str]:
    return {run.run_id for run in await wf.list_runs(limit=1000)}


async def until(condition: Callable[[], Any]) -> None:
    """Wait (for at most about 20 s) until the async ``condition`` holds."""
    for _ in range(2000):
        if await condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the worker never got there")


async def test_a_worker_prunes_finished_runs_older_than_retention(
    make_app: Callable[..., Workflow],
) -> None:
    """At start, then periodically, the worker deletes runs finished over retention ago."""
    wf = make_app(retention=0.2)
    job = jobs(wf)
    await job(1)
    await job(2)
    await job.enqueue(3, queue="elsewhere")  # never served: stays queued
    await asyncio.sleep(0.25)
    async with serving(wf, queues=["jobs"]):

        async def only_queued_left() -> bool:
            return await run_ids(wf) == {"job-3"}

        await until(only_queued_left)
        handle = await job.enqueue(4)
        assert await handle.result(timeout=20) == 4
        # Finished within the worker's life: pruned by a later pass.
        await until(only_queued_left)


class FlakyPruneStore(InMemoryStore):
    """An in-memory store whose first prune fails, as an unreachable database would."""

    def __init__(self) -> None:
        super().__init__()
        self.prune_calls = 0

    async def prune_runs(
        self,
        app: str,
        *,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int,
    ) -> int:
        self.prune_calls += 1
        if self.prune_calls == 1:
            raise ConnectionError("database is down")
        return await super().prune_runs(
            app, finished_before=finished_before, statuses=statuses, limit=limit
        )


async def test_a_failed_prune_is_logged_and_retried_without_stopping_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker keeps serving after a prune fails, logs it, and prunes on a later pass."""
    store = FlakyPruneStore()
    async with Workflow("flaky", db=store, retention=0.1) as wf:
        job = jobs(wf)
        await job(1)
        await asyncio.sleep(0.15)
        with caplog.at_level(logging.WARNING, logger="durable.retention"):
            async with serving(wf):
                handle = await job.enqueue(2)
                assert await handle.result(timeout=20) == 2

                async def pruned() -> bool:
                    return "job-1" not in await run_ids(wf)

                await until(pruned)
        assert store.prune_calls >= 2
        failures = [r for r in caplog.records if getattr(r, "action", None) == "prune_failed"]
        assert failures
        assert "database is down" in failures[0].getMessage()
