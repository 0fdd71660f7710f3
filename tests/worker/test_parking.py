"""Parked waits under wf.serve(): long sleeps and signal waits leave the worker, on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.worker._serving import serving

from durable import Workflow
from durable.errors import (
    ConfigurationError,
    RunCancelledError,
    RunConflictError,
    RunNotFinishedError,
    SignalTimeoutError,
)

pytestmark = pytest.mark.asyncio

PARK_AFTER = 0.2


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30.0) -> None:
    """Wait until ``check()`` is true; fail naming ``what`` after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the store is polled
            await asyncio.sleep(0.02)
    assert await check(), what


class Counter:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def hit(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def napping(wf: Workflow, counter: Counter, seconds: float = 1.0, queue: str = "jobs") -> Any:
    @wf.task
    async def before(n: int) -> int:
        counter.hit(f"before-{n}")
        return n

    @wf.task
    async def after(n: int) -> int:
        counter.hit(f"after-{n}")
        return n * 10

    @wf.workflow(id="nap-{n}", queue=queue)
    async def nap(n: int) -> int:
        first = await before(n)
        await wf.sleep(seconds)
        return first + await after(n)

    return nap


def asking(wf: Workflow, counter: Counter, timeout: float | None = None) -> Any:
    @wf.task
    async def note(tag: str) -> str:
        counter.hit(tag)
        return tag

    @wf.workflow(id="approve-{n}", queue="jobs")
    async def approve(n: int) -> str:
        await note(f"asked-{n}")
        answer = await wf.signal("answer", timeout=timeout)
        return await note(f"{answer}-{n}")

    return approve


async def test_a_long_sleep_parks_and_wakes_on_time(make_app: Callable[..., Workflow]) -> None:
    """The sleeping run is waiting with nothing in memory; it resumes and completes once."""
    wf = make_app(park_after=PARK_AFTER)
    counter = Counter()
    nap = napping(wf, counter, seconds=1.0)
    handle = await nap.enqueue(3)
    async with serving(wf):

        async def parked() -> bool:
            return await handle.status() == "waiting" and wf._executor.active_runs == 0

        await until(parked, "the run parked")
        assert counter.calls == {"before-3": 1}
        info = await wf.get_run(handle.run_id)
        assert (info.status, info.finished_at, info.owner) == ("waiting", None, None)
        assert await handle.result(timeout=30) == 33
    assert counter.calls == {"before-3": 1, "after-3": 1}
    info = await wf.get_run(handle.run_id)
    assert info.status == "completed"


async def test_a_parked_run_wakes_at_its_time_not_at_the_next_poll(
    make_app: Callable[..., Workflow],
) -> None:
    """The worker that parked the run wakes for it: a 60 s poll interval does not delay it."""
    wf = make_app(park_after=PARK_AFTER)
    nap = napping(wf, Counter(), seconds=1.0)
    handle = await nap.enqueue(6)
    async with serving(wf, poll_interval=60.0):
        assert await handle.result(timeout=20) == 66


async def test_a_stopping_worker_parks_its_waiting_runs_at_once(
    make_app: Callable[..., Workflow],
) -> None:
    """A sleep and a signal wait shorter than park_after are parked when the worker stops.

    The worker is not held for its 60 s grace; another worker completes both
    runs from their recorded steps.
    """
    wf = make_app(park_after=3600.0)
    counter = Counter()
    nap = napping(wf, counter, seconds=2.0)
    approve = asking(wf, counter, timeout=600)
    handles = [await nap.enqueue(7), await approve.enqueue(7)]
    worker = asyncio.create_task(wf.serve(poll_interval=0.05, grace=60.0, handle_signals=False))

    async def both_waiting_in_memory() -> bool:
        return counter.calls.keys() == {"before-7", "asked-7"}

    await until(both_waiting_in_memory, "both runs reached their wait")
    worker.cancel()
    done, _ = await asyncio.wait([worker], timeout=20)
    assert done, "the worker waited out its grace period"
    assert [await h.status() for h in handles] == ["waiting", "waiting"]
    await wf.send_signal(handles[1].run_id, "answer", "yes")
    async with serving(wf):
        assert [await h.result(timeout=30) for h in handles] == [77, "yes-7"]
    assert counter.calls == {"before-7": 1, "after-7": 1, "asked-7": 1, "yes-7": 1}


async def test_a_short_sleep_does_not_park(make_app: Callable[..., Workflow]) -> None:
    """A sleep within park_after waits in the worker, its run running throughout."""
    wf = make_app(park_after=30.0)
    counter = Counter()
    nap = napping(wf, counter, seconds=0.5)
    handle = await nap.enqueue(1)
    seen: set[str] = set()
    async with serving(wf):
        while (status := await handle.status()) != "completed":
            seen.add(status)
            await asyncio.sleep(0.02)
    assert "waiting" not in seen
    assert await handle.result() == 11


async def test_serve_park_after_overrides_the_workflows(make_app: Callable[..., Workflow]) -> None:
    """wf.serve(park_after=...) wins over Workflow(park_after=...)."""
    wf = make_app(park_after=3600.0)
    nap = napping(wf, Counter(), seconds=1.0)
    handle = await nap.enqueue(2)
    async with serving(wf, park_after=PARK_AFTER):

        async def parked() -> bool:
            return await handle.status() == "waiting"

        await until(parked, "the run parked")
        assert await handle.result(timeout=30) == 22


async def test_a_signal_wait_parks_and_a_signal_wakes_it(
    make_app: Callable[..., Workflow],
) -> None:
    """After park_after seconds of waiting, the run parks; the signal brings it back."""
    wf = make_app(park_after=PARK_AFTER)
    counter = Counter()
    approve = asking(wf, counter)
    handle = await approve.enqueue(1)
    async with serving(wf):

        async def parked() -> bool:
            return await handle.status() == "waiting" and wf._executor.active_runs == 0

        await until(parked, "the run parked")
        await wf.send_signal(handle.run_id, "answer", "yes")
        assert await handle.result(timeout=30) == "yes-1"
    assert counter.calls == {"asked-1": 1, "yes-1": 1}


async def test_a_parked_signal_wait_wakes_at_its_timeout(
    make_app: Callable[..., Workflow],
) -> None:
    """No signal: the parked wait resumes at its deadline and times out."""
    wf = make_app(park_after=PARK_AFTER)

    @wf.workflow(id="ask-{n}", queue="jobs")
    async def ask(n: int) -> str:
        try:
            return str(await wf.signal("answer", timeout=1.5))
        except SignalTimeoutError:
            return "no answer"

    handle = await ask.enqueue(1)
    async with serving(wf):

        async def parked() -> bool:
            return await handle.status() == "waiting"

        await until(parked, "the run parked")
        run = await wf.store.get_run(wf.name, handle.run_id)
        assert run is not None
        assert run.not_before is not None
        assert await handle.result(timeout=30) == "no answer"


async def test_parked_runs_hold_no_concurrency_slot(make_app: Callable[..., Workflow]) -> None:
    """concurrency=1: five sleeping runs are all parked at once, then all complete."""
    wf = make_app(park_after=PARK_AFTER)
    wf.queue("one", concurrency=1)
    nap = napping(wf, Counter(), seconds=2.0, queue="one")
    handles = [await nap.enqueue(n) for n in range(5)]
    async with serving(wf):

        async def all_parked() -> bool:
            return [await h.status() for h in handles] == ["waiting"] * 5

        await until(all_parked, "all five runs parked together")
        assert [await h.result(timeout=60) for h in handles] == [n * 11 for n in range(5)]


async def test_cancelling_a_parked_run_cancels_it_at_once(
    make_app: Callable[..., Workflow],
) -> None:
    """The parked run is cancelled by the call itself; it never resumes."""
    wf = make_app(park_after=PARK_AFTER)
    counter = Counter()
    nap = napping(wf, counter, seconds=1.0)
    handle = await nap.enqueue(4)
    async with serving(wf):

        async def parked() -> bool:
            return await handle.status() == "waiting"

        await until(parked, "the run parked")
        await handle.cancel()
        assert await handle.status() == "cancelled"
        with pytest.raises(RunCancelledError):
            await handle.result(timeout=5)
        await asyncio.sleep(1.5)  # past its wake time: a claim would find it now
    assert await handle.status() == "cancelled"
    assert counter.calls == {"before-4": 1}


async def test_a_caller_of_a_parked_run_waits_for_its_outcome(
    make_app: Callable[..., Workflow],
) -> None:
    """Calling the workflow for a parked run id awaits it rather than running it here."""
    wf = make_app(park_after=PARK_AFTER)
    counter = Counter()
    nap = napping(wf, counter, seconds=1.0)
    handle = await nap.enqueue(5)
    async with serving(wf):

        async def parked() -> bool:
            return await handle.status() == "waiting"

        await until(parked, "the run parked")
        assert await nap(5) == 55
    assert counter.calls == {"before-5": 1, "after-5": 1}


async def test_outside_a_worker_a_long_sleep_does_not_park(
    make_app: Callable[..., Workflow],
) -> None:
    """A direct call keeps its wait in the caller's process."""
    wf = make_app(park_after=0.0)
    nap = napping(wf, Counter(), seconds=0.5)
    call = asyncio.ensure_future(nap.run("direct", 1))
    seen: set[str] = set()
    while not call.done():
        run = await wf.store.get_run(wf.name, "direct")
        if run is not None:
            seen.add(run.status)
        await asyncio.sleep(0.02)
    assert await call == 11
    assert "waiting" not in seen


@pytest.mark.parametrize("bad", [-1, "30", float("nan"), True])
async def test_park_after_must_be_seconds(make_app: Callable[..., Workflow], bad: Any) -> None:
    """A bad park_after names itself, on Workflow() and on serve()."""
    with pytest.raises(ConfigurationError, match="park_after"):
        make_app(park_after=bad)
    wf = make_app()
    with pytest.raises(ConfigurationError, match="park_after"):
        await wf.serve(park_after=bad, handle_signals=False)


async def test_a_parked_run_is_listed_kept_and_not_requeued(
    make_app: Callable[..., Workflow],
) -> None:
    """Listed as waiting; delete_run and requeue refuse it, saying why; it still completes."""
    wf = make_app(park_after=PARK_AFTER)
    counter = Counter()
    nap = napping(wf, counter, seconds=2.0)
    handle = await nap.enqueue(4)
    async with serving(wf):

        async def parked() -> bool:
            return await handle.status() == "waiting"

        await until(parked, "the run parked")
        listed = await wf.list_runs(status="waiting")
        assert [info.run_id for info in listed] == [handle.run_id]
        with pytest.raises(RunNotFinishedError, match="waiting"):
            await wf.delete_run(handle.run_id)
        with pytest.raises(RunConflictError, match="parked"):
            await wf.requeue(handle.run_id)
        assert await handle.result(timeout=30) == 44
    assert counter.calls == {"before-4": 1, "after-4": 1}
