"""Durable sleep: the wake-up time is recorded once, replays are instant, resumes sleep the rest."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from tests._journal import Journal

from durable import DurableError, Workflow
from durable.errors import ConfigurationError
from durable.testing import skip_sleeps


async def wait_for_step(wf: Workflow, run_id: str, task: str) -> None:
    """Poll the store until the run has a step recorded by ``task``."""
    for _ in range(500):
        loaded = await wf.store.load_run(wf.name, run_id)
        if loaded is not None and any(s.task == task for s in loaded[1]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {task} step in run {run_id!r}")


async def test_sleep_waits_and_records_wake_time(wf: Workflow) -> None:
    """A sleep waits its duration and records its wake-up time as a step of the run."""

    @wf.workflow(id="nap")
    async def nap() -> str:
        await wf.sleep(0.15)
        return "awake"

    started = time.time()
    assert await nap() == "awake"
    elapsed = time.time() - started
    assert elapsed >= 0.15
    info = await wf.get_run("nap")
    [step] = info.steps
    assert step.task == "durable.sleep"
    assert step.status == "completed"
    assert started + 0.15 <= step.result["wake_at"] <= started + elapsed


async def test_completed_sleep_replays_instantly(wf: Workflow) -> None:
    """Resuming a run after a completed sleep does not sleep again and does not re-run steps."""
    journal = Journal()
    fail = {"armed": True}

    @wf.task
    async def before() -> None:
        journal("before")

    @wf.task
    async def after() -> str:
        journal("after")
        if fail["armed"]:
            raise RuntimeError("flaky")
        return "done"

    @wf.workflow(id="replay-sleep")
    async def flow() -> str:
        await before()
        await wf.sleep(1.0)
        return await after()

    with pytest.raises(RuntimeError, match="flaky"):
        await flow()
    fail["armed"] = False
    started = time.monotonic()
    assert await flow() == "done"
    # The recorded sleep is over: replay does not sleep its 1.0 s again.
    assert time.monotonic() - started < 0.8
    assert journal.counts == {"before": 1, "after": 2}


async def test_interrupted_sleep_resumes_for_the_remaining_time(wf: Workflow) -> None:
    """A run interrupted mid-sleep and resumed wakes at the recorded time, not a full sleep on."""
    journal = Journal()

    @wf.task
    async def after() -> None:
        journal("after")

    @wf.workflow(id="interrupted-sleep")
    async def flow() -> str:
        await wf.sleep(1.2)
        await after()
        return "ok"

    call = asyncio.ensure_future(flow())
    await wait_for_step(wf, "interrupted-sleep", "durable.sleep")
    await asyncio.sleep(0.9)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    info = await wf.get_run("interrupted-sleep")
    wake_at = info.steps[0].result["wake_at"]
    assert journal.entries == []

    started = time.time()
    assert await flow() == "ok"
    finished = time.time()
    assert finished >= wake_at
    # A full sleep from the restart would take 1.2 s; only the rest (~0.3 s) is slept.
    assert finished - started < 1.0
    assert journal.entries == ["after"]


async def test_sleep_until_datetime_and_timestamp(wf: Workflow) -> None:
    """sleep_until accepts an aware datetime or a timestamp; a past time returns at once."""

    @wf.workflow(id="until")
    async def flow() -> None:
        await wf.sleep_until(datetime.now(UTC) + timedelta(seconds=0.1))
        await wf.sleep_until(time.time() - 10)

    started = time.monotonic()
    await flow()
    assert 0.1 <= time.monotonic() - started < 1.0
    info = await wf.get_run("until")
    assert [s.step_id for s in info.steps] == ["durable.sleep", "durable.sleep#1"]


async def test_sleep_accepts_timedelta_and_zero(wf: Workflow) -> None:
    """wf.sleep takes seconds or a timedelta, and a zero sleep is still a recorded step."""

    @wf.workflow(id="td")
    async def flow() -> None:
        await wf.sleep(timedelta(milliseconds=20))
        await wf.sleep(0)

    await flow()
    assert len((await wf.get_run("td")).steps) == 2


async def test_sleep_rejects_bad_arguments(wf: Workflow) -> None:
    """Negative, infinite and non-numeric durations and naive datetimes are refused clearly."""

    @wf.workflow(id="bad-{kind}")
    async def flow(kind: str) -> None:
        if kind == "negative":
            await wf.sleep(-1)
        elif kind == "inf":
            await wf.sleep(float("inf"))
        elif kind == "text":
            await wf.sleep("5")  # type: ignore[arg-type]
        else:
            await wf.sleep_until(datetime(2030, 1, 1))

    for kind in ("negative", "inf", "text"):
        with pytest.raises(ConfigurationError, match="seconds"):
            await flow(kind)
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        await flow("naive")


async def test_sleep_outside_a_workflow_is_an_error(wf: Workflow) -> None:
    """wf.sleep outside a workflow body (plain code or a task) raises a DurableError saying so."""

    @wf.task
    async def sleepy() -> None:
        await wf.sleep(0.01)

    @wf.workflow(id="task-sleeps")
    async def flow() -> None:
        await sleepy()

    with pytest.raises(DurableError, match="outside a workflow"):
        await wf.sleep(0.01)
    with pytest.raises(DurableError, match="outside a workflow"):
        await flow()


async def test_sleeps_in_gather_get_stable_step_ids(wf: Workflow) -> None:
    """Concurrent sleeps run in parallel and keep the step ids of their call order."""

    @wf.workflow(id="parallel-sleeps")
    async def flow() -> None:
        await asyncio.gather(wf.sleep(0.4), wf.sleep(0.2), wf.sleep(0.4))

    started = time.monotonic()
    await flow()
    # In sequence the sleeps would take 1.0 s; together, 0.4 s.
    assert time.monotonic() - started < 0.9
    info = await wf.get_run("parallel-sleeps")
    assert [(s.step_id, s.position) for s in info.steps] == [
        ("durable.sleep", 0),
        ("durable.sleep#1", 1),
        ("durable.sleep#2", 2),
    ]


async def test_skip_sleeps_ends_long_sleeps_at_once(wf: Workflow) -> None:
    """Inside skip_sleeps() a day-long sleep is recorded but ends at once; the wait is reported."""
    journal = Journal()

    @wf.task
    async def remind(user: int) -> str:
        journal(f"remind {user}")
        return f"reminded {user}"

    @wf.workflow(id="remind-{user}")
    async def reminder(user: int) -> str:
        await wf.sleep(timedelta(days=1))
        return await remind(user)

    with skip_sleeps() as slept:
        assert await reminder(7) == "reminded 7"
    assert len(slept) == 1
    assert 86_000 < slept[0] <= 86_400
    assert journal.entries == ["remind 7"]
    info = await wf.get_run("remind-7")
    assert [s.task for s in info.steps] == ["durable.sleep", "remind"]
