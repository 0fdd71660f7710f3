"""wf.delete_run and wf.prune on every store kind."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from durable import Workflow
from durable.errors import ConfigurationError, RunNotFinishedError, RunNotFoundError
from durable.stores.base import Store
from durable.stores.memory import InMemoryStore
from durable.worker import retention

pytestmark = pytest.mark.asyncio


def pipeline(wf: Workflow) -> tuple[object, object]:
    @wf.task
    async def double(n: int) -> int:
        return n * 2

    @wf.workflow(id="job-{n}")
    async def job(n: int) -> int:
        if n < 0:
            raise ValueError(f"negative {n}")
        return await double(n)

    @wf.workflow(id="waits-{n}")
    async def waits(n: int) -> int:
        return int(await wf.signal("go")) + n

    return job, waits


async def run_ids(wf: Workflow) -> set[str]:
    return {run.run_id for run in await wf.list_runs(limit=1000)}


async def test_delete_run_removes_a_finished_run(wf: Workflow) -> None:
    """A completed run and its steps are gone after delete_run; other runs stay."""
    job, _ = pipeline(wf)
    assert await job(1) == 2  # type: ignore[operator]
    assert await job(2) == 4  # type: ignore[operator]
    assert len((await wf.get_run("job-1")).steps) == 1
    await wf.delete_run("job-1")
    with pytest.raises(RunNotFoundError):
        await wf.get_run("job-1")
    assert await run_ids(wf) == {"job-2"}
    # The id is free again: calling the workflow runs it anew.
    assert await job(1) == 2  # type: ignore[operator]
    assert (await wf.get_run("job-1")).status == "completed"


async def test_delete_run_of_an_unknown_run_raises_not_found(wf: Workflow) -> None:
    """An unknown id raises RunNotFoundError naming it."""
    with pytest.raises(RunNotFoundError, match="nope"):
        await wf.delete_run("nope")


async def test_delete_run_refuses_a_run_that_waits(wf: Workflow) -> None:
    """A run waiting on a signal is running: refused with its status; deletable once done."""
    _, waits = pipeline(wf)
    task = asyncio.create_task(waits(1))  # type: ignore[operator]
    for _ in range(2000):  # until the run waits for its signal
        if await run_ids(wf) == {"waits-1"}:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(RunNotFinishedError, match=r"waits-1.*running") as caught:
        await wf.delete_run("waits-1")
    assert caught.value.status == "running"
    await wf.send_signal("waits-1", "go", 41)
    assert await task == 42
    await wf.delete_run("waits-1")
    assert await run_ids(wf) == set()


async def test_delete_run_refuses_a_queued_run(wf: Workflow) -> None:
    """A queued run is refused until it is cancelled; then it can be deleted."""
    job, _ = pipeline(wf)
    await job.enqueue(5)  # type: ignore[attr-defined]
    with pytest.raises(RunNotFinishedError, match="queued"):
        await wf.delete_run("job-5")
    await wf.cancel("job-5")
    await wf.delete_run("job-5")
    assert await run_ids(wf) == set()


async def test_delete_run_keeps_child_runs(wf: Workflow) -> None:
    """Deleting a parent leaves its child run, still naming the parent."""

    @wf.workflow(id="child-{n}")
    async def child(n: int) -> int:
        return n + 1

    @wf.workflow(id="parent-{n}")
    async def parent(n: int) -> int:
        return await child(n)

    assert await parent(1) == 2
    await wf.delete_run("parent-1")
    runs = await wf.list_runs()
    assert [run.run_id for run in runs] == ["child-1"]
    assert (await wf.get_run("child-1")).status == "completed"


async def test_prune_deletes_old_finished_runs_only(wf: Workflow, store: Store) -> None:
    """prune deletes the finished runs older than older_than, never the unfinished ones."""
    job, _ = pipeline(wf)
    await job(1)  # type: ignore[operator]
    with pytest.raises(ValueError, match="negative"):
        await job(-1)  # type: ignore[operator]
    await job.enqueue(3)  # type: ignore[attr-defined]
    assert await wf.prune(timedelta(hours=1)) == 0
    await asyncio.sleep(0.05)
    assert await wf.prune(0.02, statuses=["failed"], dry_run=True) == 1
    assert await run_ids(wf) == {"job-1", "job--1", "job-3"}
    assert await wf.prune(0.02, statuses=["failed"]) == 1
    assert await run_ids(wf) == {"job-1", "job-3"}
    assert await wf.prune(0.02) == 1
    assert await run_ids(wf) == {"job-3"}
    assert await store.read_signal(wf.name, "job-1", "go", 0) is None


async def test_prune_batches_and_reports_progress(wf: Workflow, store: Store) -> None:
    """Runs go in batches of the batch size; progress gets the running total after each."""
    job, _ = pipeline(wf)
    for n in range(5):
        await job(n)  # type: ignore[operator]
    seen: list[int] = []
    await asyncio.sleep(0.02)
    total = await retention.prune(
        store, wf.name, older_than=0.01, batch_size=2, progress=seen.append
    )
    assert (total, seen) == (5, [2, 4, 5])
    assert await run_ids(wf) == set()


async def test_prune_rejects_bad_arguments(wf: Workflow) -> None:
    """Unfinished statuses and non-positive ages are ConfigurationErrors naming them."""
    with pytest.raises(ConfigurationError, match="running"):
        await wf.prune(10, statuses=["completed", "running"])
    with pytest.raises(ConfigurationError, match="queued"):
        await wf.prune(10, statuses="queued")
    for age in (0, -1, "30d", float("nan")):
        with pytest.raises(ConfigurationError, match="older_than"):
            await wf.prune(age)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="retention"):
        Workflow("app", db=InMemoryStore(), retention=timedelta(0))
