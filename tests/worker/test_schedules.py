"""@wf.schedule: one run per tick however many workers serve, and the catch-up policies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable import Schedule, Workflow
from durable.errors import ConfigurationError
from durable.worker.schedules import Scheduler

pytestmark = pytest.mark.asyncio

EVERY_SECOND = "* * * * * *"


def ticking(app: Workflow, seen: list[datetime], cron: str = EVERY_SECOND, **options: Any) -> Any:
    @app.schedule(cron, **options)
    @app.workflow
    async def tick(scheduled_at: datetime, note: str = "") -> str:
        seen.append(scheduled_at)
        return scheduled_at.isoformat()

    return tick


@contextlib.asynccontextmanager
async def serving(apps: list[Workflow]) -> AsyncIterator[None]:
    workers = [
        asyncio.create_task(app.serve(poll_interval=0.05, handle_signals=False)) for app in apps
    ]
    try:
        yield
    finally:
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker


async def test_three_workers_enqueue_each_tick_once(make_app: Callable[..., Workflow]) -> None:
    """Three workers on one store, a schedule every second: one run per tick, no gap."""
    seen: list[datetime] = []
    apps = [make_app("clock") for _ in range(3)]
    for app in apps:
        ticking(app, seen)
    async with serving(apps):
        await asyncio.sleep(3.5)
    await asyncio.sleep(0.3)
    runs = await apps[0].list_runs(limit=100)
    ticks = sorted(datetime.fromisoformat(run.run_id.split("@", 1)[1]) for run in runs)
    assert len(ticks) >= 3
    assert len(ticks) == len(set(ticks))
    # Every second between the first and the last tick has exactly one run.
    assert (ticks[-1] - ticks[0]).total_seconds() == len(ticks) - 1
    assert all(run.workflow == "tick" for run in runs)
    done = [run for run in runs if run.status == "completed"]
    assert len(seen) == len(done) >= len(runs) - 1
    assert all(isinstance(t, datetime) and t.tzinfo is not None for t in seen)


async def _scheduler(app: Workflow) -> Scheduler:
    await app._executor.ensure_open()
    return Scheduler(app.name, app.store, app.schedules(), app._enqueue_tick)


async def _run_ids(app: Workflow) -> list[str]:
    return sorted(run.run_id for run in await app.list_runs(limit=1000))


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [
        ("latest", ["tick@2026-01-01T00:05:00+00:00"]),
        ("all", [f"tick@2026-01-01T00:0{m}:00+00:00" for m in range(1, 6)]),
        ("none", []),
    ],
)
async def test_catchup_of_ticks_missed_while_no_worker_ran(
    wf: Workflow, catchup: str, expected: list[str]
) -> None:
    """Ticks missed since the last enqueued one: the newest, all, or none of them."""
    ticking(wf, [], "* * * * *", catchup=catchup)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = await _scheduler(wf)
    assert await first.run_due(start) == 0  # a new schedule starts now: nothing to catch up
    assert await first.run_due(start + timedelta(seconds=1)) == 0
    # Tick 00:00 ran; then no worker ran for five minutes and a half.
    await wf._enqueue_tick(wf.schedules()[0], start)
    later = await _scheduler(wf)
    await later.run_due(start + timedelta(minutes=5, seconds=30))
    assert await _run_ids(wf) == sorted(["tick@2026-01-01T00:00:00+00:00", *expected])


async def test_a_tick_on_time_is_enqueued_under_every_policy(wf: Workflow) -> None:
    """A worker that is running when a tick comes due enqueues it, once."""
    ticking(wf, [], "*/5 * * * *", catchup="none")
    start = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    scheduler = await _scheduler(wf)
    await scheduler.run_due(start)
    assert await scheduler.run_due(datetime(2026, 1, 1, 0, 5, 1, tzinfo=UTC)) == 1
    assert await scheduler.run_due(datetime(2026, 1, 1, 0, 5, 2, tzinfo=UTC)) == 0
    assert await _run_ids(wf) == ["tick@2026-01-01T00:05:00+00:00"]


async def test_the_schedule_is_listed(wf: Workflow) -> None:
    """wf.schedules() lists each schedule with its next tick, in its timezone."""
    ticking(wf, [], "0 9 * * 1-5", timezone="Europe/Brussels")
    (schedule,) = wf.schedules()
    assert isinstance(schedule, Schedule)
    assert (schedule.cron, schedule.workflow, schedule.catchup) == ("0 9 * * 1-5", "tick", "latest")
    nxt = schedule.next_tick(datetime(2026, 12, 5, 12, tzinfo=UTC))  # a Saturday
    assert nxt.isoformat() == "2026-12-07T09:00:00+01:00"


async def test_bad_schedules_are_refused(wf: Workflow) -> None:
    """Bad cron, timezone, policy or workflow signature are named."""

    @wf.workflow
    async def no_tick() -> None: ...

    @wf.workflow
    async def untyped(scheduled_at) -> None: ...  # type: ignore[no-untyped-def]

    @wf.workflow
    async def needs_more(scheduled_at: datetime, user: str) -> None: ...

    with pytest.raises(ConfigurationError, match="scheduled_at"):
        wf.schedule("* * * * *")(no_tick)
    with pytest.raises(ConfigurationError, match="scheduled_at: datetime"):
        wf.schedule("* * * * *")(untyped)
    with pytest.raises(ConfigurationError, match="user"):
        wf.schedule("* * * * *")(needs_more)
    seen: list[datetime] = []
    with pytest.raises(ConfigurationError, match="cron"):
        ticking(wf, seen, "every monday")
    with pytest.raises(ConfigurationError, match="timezone"):
        ticking(wf, seen, timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match="catchup"):
        ticking(wf, seen, catchup="some")
    with pytest.raises(ConfigurationError, match=r"above @wf\.workflow"):

        @wf.schedule("* * * * *")  # type: ignore[arg-type]
        async def bare(scheduled_at: datetime) -> None: ...
