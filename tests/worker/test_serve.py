"""wf.serve(): workers in this process, on every store kind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tests.worker._serving import serving

from durable import Workflow
from durable.errors import ConfigurationError
from durable.stores.base import NewRun, Store

pytestmark = pytest.mark.asyncio


class Gauge:
    """How many bodies run at once, at most, and when each started."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.starts: list[float] = []
        self.order: list[int] = []

    @contextlib.asynccontextmanager
    async def inside(self, n: int, seconds: float) -> AsyncIterator[None]:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.starts.append(time.monotonic())
        self.order.append(n)
        try:
            await asyncio.sleep(seconds)
            yield
        finally:
            self.now -= 1


def gauged(wf: Workflow, gauge: Gauge, seconds: float = 0.0, queue: str = "jobs") -> Any:
    @wf.task
    async def work(n: int) -> int:
        async with gauge.inside(n, seconds):
            return n * 10

    @wf.workflow(id="job-{n}", queue=queue)
    async def job(n: int) -> int:
        return await work(n)

    return job


async def test_a_worker_runs_queued_runs_by_priority(wf: Workflow) -> None:
    """One slot: runs start lower priority first, then in enqueue order."""
    gauge = Gauge()
    job = gauged(wf, gauge)
    handles = [await job.enqueue(n, priority=p) for n, p in [(1, 5), (2, 0), (3, 5), (4, 0)]]
    async with serving(wf, queues=["jobs"], concurrency=1):
        results = [await h.result(timeout=20) for h in handles]
    assert results == [10, 20, 30, 40]
    assert gauge.order == [2, 4, 1, 3]


async def test_queue_concurrency_holds_across_workers(make_app: Callable[..., Workflow]) -> None:
    """concurrency caps the queue's running runs across two workers of the app."""
    gauge = Gauge()
    apps = [make_app("shop"), make_app("shop")]
    jobs = []
    for app in apps:
        app.queue("jobs", concurrency=3)
        jobs.append(gauged(app, gauge, seconds=0.05))
    handles = [await jobs[0].enqueue(n) for n in range(12)]
    async with serving(apps[0], concurrency=8), serving(apps[1], concurrency=8):
        assert [await h.result(timeout=30) for h in handles] == [n * 10 for n in range(12)]
    assert gauge.peak == 3


async def test_worker_concurrency_caps_one_worker(wf: Workflow) -> None:
    """worker_concurrency caps the queue's runs in one worker process."""
    gauge = Gauge()
    wf.queue("jobs", worker_concurrency=2)
    job = gauged(wf, gauge, seconds=0.05)
    handles = [await job.enqueue(n) for n in range(6)]
    async with serving(wf, concurrency=10):
        for h in handles:
            await h.result(timeout=30)
    assert gauge.peak == 2


async def test_rate_limit_spaces_the_starts(wf: Workflow) -> None:
    """rate_limit=(2, 0.5): never more than 2 starts in any half second."""
    gauge = Gauge()
    wf.queue("jobs", rate_limit=(2, 0.5))
    job = gauged(wf, gauge)
    handles = [await job.enqueue(n) for n in range(6)]
    async with serving(wf, concurrency=10):
        for h in handles:
            await h.result(timeout=30)
    starts = sorted(gauge.starts)
    for i in range(len(starts) - 2):
        # Store clocks and ours may differ by a little: allow 50 ms.
        assert starts[i + 2] - starts[i] >= 0.45, starts


async def test_a_delayed_run_waits_for_its_time(wf: Workflow) -> None:
    """A run enqueued with a delay does not start before it."""
    gauge = Gauge()
    job = gauged(wf, gauge)
    enqueued = time.monotonic()
    handle = await job.enqueue(1, delay=0.6)
    async with serving(wf):
        assert await handle.result(timeout=20) == 10
    assert gauge.starts[0] - enqueued >= 0.5


async def test_a_delayed_run_enqueued_here_starts_at_its_time_not_at_the_next_poll(
    wf: Workflow,
) -> None:
    """The worker of the enqueuing process wakes for the delay's end."""
    job = gauged(wf, Gauge())
    handle = await job.enqueue(2, delay=0.5)
    async with serving(wf, poll_interval=60.0):
        assert await handle.result(timeout=20) == 20


async def test_serve_without_queues_serves_every_declared_queue_and_default(
    wf: Workflow,
) -> None:
    """wf.serve() with no queues= takes runs of the declared queues and of 'default'."""
    wf.queue("declared")

    @wf.workflow
    async def echo(n: int) -> int:
        return n

    handles = [await echo.enqueue(1), await echo.enqueue(2, queue="declared")]
    async with serving(wf):
        assert [await h.result(timeout=20) for h in handles] == [1, 2]


async def test_a_worker_adopts_an_orphaned_run(wf: Workflow, store: Store) -> None:
    """A run whose owner's lease expired is adopted; its completed steps are not re-run."""
    calls: list[str] = []

    @wf.task
    async def step(name: str) -> str:
        calls.append(name)
        return name

    @wf.workflow(id="orphan")
    async def orphan() -> list[str]:
        return [await step("a"), await step("b")]

    # A process that started the run, checkpointed step "a", and vanished.
    claim = await store.claim_run(
        NewRun(wf.name, "orphan", "orphan", "{}"), owner="ghost", lease_ttl=0.2
    )
    from durable.engine.steps import new_record

    await store.save_step(
        wf.name,
        "orphan",
        claim.run.token,
        new_record("step", 0, "step", "completed", result='"a"', started_at=time.time()),
    )
    await asyncio.sleep(0.3)
    async with serving(wf):
        assert await wf.handle("orphan").result(timeout=20) == ["a", "b"]
    assert calls == ["b"]


async def test_a_run_of_an_unknown_workflow_is_left_to_others(
    make_app: Callable[..., Workflow], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that does not know a run's workflow hands it back; one that knows runs it."""
    knowing, unaware = make_app("shop"), make_app("shop")

    @knowing.workflow(id="special")
    async def special() -> str:
        return "done"

    handle = await special.enqueue()
    with caplog.at_level(logging.WARNING, logger="durable.worker"):
        async with serving(unaware):
            await asyncio.sleep(0.3)
            assert await handle.status() in ("queued", "running")
    assert "not registered in this worker" in caplog.text
    async with serving(knowing):
        assert await handle.result(timeout=20) == "done"


async def test_a_cancelled_worker_hands_its_runs_to_another(
    make_app: Callable[..., Workflow],
) -> None:
    """Stopping a worker releases its in-flight runs; another worker resumes them from
    their completed steps."""
    calls: list[str] = []
    gate = asyncio.Event()
    apps = [make_app("shop"), make_app("shop")]
    for app in apps:

        @app.task
        async def first() -> None:
            calls.append("first")

        @app.task
        async def second() -> None:
            calls.append("second")
            await gate.wait()

        @app.workflow(id="two-steps")
        async def two_steps() -> str:
            await first()
            await second()
            return "ok"

    handle = await apps[0]._workflows["two_steps"].enqueue()
    async with serving(apps[0], grace=0.1):
        while calls != ["first", "second"]:  # noqa: ASYNC110 - a plain list
            await asyncio.sleep(0.01)
    stored = await apps[0].store.get_run(apps[0].name, "two-steps")
    assert stored is not None
    assert (stored.status, stored.owner) == ("running", None)
    gate.set()
    async with serving(apps[1]):
        assert await handle.result(timeout=20) == "ok"
    assert calls == ["first", "second", "second"]


async def test_serve_refuses_bad_options(wf: Workflow) -> None:
    """Bad serve() and queue() options are named."""
    with pytest.raises(ConfigurationError, match="concurrency"):
        await wf.serve(concurrency=0)
    with pytest.raises(ConfigurationError, match="queues"):
        await wf.serve(queues=[])
    with pytest.raises(ConfigurationError, match="rate_limit"):
        wf.queue("q", rate_limit=(10, 0))
    with pytest.raises(ConfigurationError, match="worker_concurrency"):
        wf.queue("q", worker_concurrency=0)
    wf.queue("q", concurrency=2)
    with pytest.raises(ConfigurationError, match="already declared"):
        wf.queue("q", concurrency=3)
