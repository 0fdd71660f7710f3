"""Signal waits poll the store together: one read_signals call per round for every waiting run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durable import Workflow
from durable.errors import StoreError, StoreUnavailableError
from durable.stores.base import Store
from durable.stores.sqlite import SQLiteStore

POLLER = "durable-signal-poller"


class _Reads:
    """Wraps a real store's signal reads and records them."""

    def __init__(self, store: Store) -> None:
        self.batches: list[tuple[float, list[tuple[str, str, int]]]] = []
        self.singles = 0
        self.fail_next: Exception | None = None
        real_many, real_one = store.read_signals, store.read_signal

        async def read_signals(app: str, wanted: Any) -> Any:
            self.batches.append((time.monotonic(), list(wanted)))
            if self.fail_next is not None:
                error, self.fail_next = self.fail_next, None
                raise error
            return await real_many(app, wanted)

        async def read_signal(*args: Any) -> Any:
            self.singles += 1
            return await real_one(*args)

        store.read_signals = read_signals  # type: ignore[method-assign]
        store.read_signal = read_signal  # type: ignore[method-assign]

    def since(self, moment: float) -> list[list[tuple[str, str, int]]]:
        return [wanted for at, wanted in self.batches if at >= moment]


def _pollers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == POLLER and not t.done()]


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


async def test_many_waiting_runs_cost_one_read_per_round(tmp_path: Path) -> None:
    """200 runs waiting on SQLite: one read_signals per round covers them all, no read_signal."""
    path = tmp_path / "many.db"
    wf = Workflow("many", db=SQLiteStore(path))
    reads = _Reads(wf.store)

    @wf.workflow(id="waiter-{i}")
    async def waiter(i: int) -> Any:
        return await wf.signal("go")

    calls = [asyncio.ensure_future(waiter(i)) for i in range(200)]
    everyone = {(f"waiter-{i}", "go", 0) for i in range(200)}
    await _until(lambda: any(set(w) == everyone for _, w in reads.batches), "all 200 were read")
    # Long enough for every wait's delay to reach its 1 s maximum.
    await asyncio.sleep(3.0)
    window = time.monotonic()
    await asyncio.sleep(3.0)
    rounds = reads.since(window)
    # Polling each wait on its own reads the store 200 times a second at least.
    assert 2 <= len(rounds) <= 8, f"{len(rounds)} rounds in 3 s"
    assert all(set(wanted) == everyone for wanted in rounds)
    assert reads.singles == 0
    assert len(_pollers()) == 1

    # Sent through another app object and store on the file, as another process
    # would: nothing wakes the waits here, the poller must find the signals.
    sender = Workflow("many", db=SQLiteStore(path))
    for i in range(200):
        await sender.send_signal(f"waiter-{i}", "go", i)
    sent = time.monotonic()
    assert await asyncio.wait_for(asyncio.gather(*calls), 10) == list(range(200))
    assert time.monotonic() - sent < 2.5
    assert reads.singles == 0
    await sender.close()
    await wf.close()
    await asyncio.sleep(0)
    assert _pollers() == []


async def test_a_fresh_wait_is_read_again_within_tens_of_milliseconds(
    make_app: Callable[..., Workflow],
) -> None:
    """The delay of a new wait starts at 20 ms and grows: its first reads come quickly."""
    wf = make_app()
    reads = _Reads(wf.store)

    @wf.workflow(id="fresh")
    async def fresh() -> Any:
        return await wf.signal("go")

    call = asyncio.ensure_future(fresh())
    await _until(lambda: len(reads.batches) >= 4, "four reads")
    first, *_, fourth = (at for at, _ in reads.batches[:4])
    # 20 + 30 + 45 ms apart, plus the reads themselves.
    assert fourth - first < 0.5
    await make_app().send_signal("fresh", "go", "late")
    assert await asyncio.wait_for(call, 5) == "late"


async def test_runs_of_several_apps_and_names_are_read_in_one_call(
    make_app: Callable[..., Workflow],
) -> None:
    """Waits on different names and indexes of one app share the round; each gets its signal."""
    wf = make_app()
    reads = _Reads(wf.store)

    @wf.workflow(id="pair-{n}")
    async def pair(n: int) -> Any:
        first, second = await asyncio.gather(wf.signal("a"), wf.signal("a"))
        return [first, second, await wf.signal("b")]

    calls = [asyncio.ensure_future(pair(n)) for n in range(3)]
    wanted = {(f"pair-{n}", "a", i) for n in range(3) for i in range(2)}
    await _until(lambda: any(set(w) == wanted for _, w in reads.batches), "one round read all")
    other = make_app()
    for n in range(3):
        for payload in ("x", "y"):
            await other.send_signal(f"pair-{n}", "a", f"{payload}{n}")
        await other.send_signal(f"pair-{n}", "b", n)
    results = await asyncio.wait_for(asyncio.gather(*calls), 10)
    for n, (first, second, third) in enumerate(results):
        assert sorted([first, second]) == [f"x{n}", f"y{n}"]
        assert third == n
    assert reads.singles == 0


async def test_an_unreachable_store_is_waited_out(make_app: Callable[..., Workflow]) -> None:
    """StoreUnavailableError fails no wait: each reads again later and gets its signal."""
    wf = make_app()
    reads = _Reads(wf.store)

    @wf.workflow(id="patient-{n}")
    async def patient(n: int) -> Any:
        return await wf.signal("go")

    calls = [asyncio.ensure_future(patient(n)) for n in range(3)]
    wanted = {(f"patient-{n}", "go", 0) for n in range(3)}
    await _until(lambda: any(set(w) == wanted for _, w in reads.batches), "one round read all")
    failed_at = len(reads.batches)
    reads.fail_next = StoreUnavailableError("the store went away")
    await _until(lambda: len(reads.batches) > failed_at + 1, "a read after the failed one")
    assert not any(call.done() for call in calls)
    for n in range(3):
        await wf.send_signal(f"patient-{n}", "go", n)
    assert await asyncio.wait_for(asyncio.gather(*calls), 10) == [0, 1, 2]


async def test_a_store_error_of_a_round_reaches_every_wait_in_it(
    make_app: Callable[..., Workflow],
) -> None:
    """A read_signals that raises fails each wait it read for with that error, as a read did."""
    wf = make_app()
    reads = _Reads(wf.store)

    @wf.workflow(id="fragile-{n}")
    async def fragile(n: int) -> Any:
        return await wf.signal("go")

    calls = [asyncio.ensure_future(fragile(n)) for n in range(3)]
    wanted = {(f"fragile-{n}", "go", 0) for n in range(3)}
    await _until(lambda: any(set(w) == wanted for _, w in reads.batches), "one round read all")
    reads.fail_next = StoreError("the store answered nonsense")
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    for outcome in outcomes:
        assert isinstance(outcome, StoreError)
        assert str(outcome) == "the store answered nonsense"
    for n in range(3):
        assert (await wf.get_run(f"fragile-{n}")).status == "failed"
    await asyncio.sleep(0)
    assert _pollers() == []
    # A failed run resumes: the wait starts over and receives its signal.
    again = asyncio.ensure_future(fragile(0))
    await wf.send_signal("fragile-0", "go", "back")
    assert await asyncio.wait_for(again, 5) == "back"


async def test_a_cancelled_poller_starts_again(make_app: Callable[..., Workflow]) -> None:
    """A wait whose poller task was cancelled starts a new one and still gets signals."""
    wf = make_app()

    @wf.workflow(id="patient")
    async def patient() -> Any:
        return await wf.signal("go")

    call = asyncio.ensure_future(patient())
    await _until(lambda: len(_pollers()) == 1, "the poller runs")
    (poller,) = _pollers()
    poller.cancel()
    await make_app().send_signal("patient", "go", "anyway")
    assert await asyncio.wait_for(call, 5) == "anyway"


async def test_no_poller_is_left_once_no_one_waits(make_app: Callable[..., Workflow]) -> None:
    """The poller stops with the last wait: received, cancelled or timed out."""
    wf = make_app()

    @wf.workflow(id="wait-{n}")
    async def wait(n: int, limit: float | None = None) -> Any:
        return await wf.signal("go", timeout=limit)

    received = asyncio.ensure_future(wait(1))
    cancelled = asyncio.ensure_future(wait(2))
    timing_out = asyncio.ensure_future(wait(3, limit=0.3))
    await _until(lambda: len(_pollers()) == 1, "the poller runs")
    await wf.send_signal("wait-1", "go", 1)
    assert await received == 1
    await wf.cancel("wait-2")
    outcomes = await asyncio.gather(cancelled, timing_out, return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["RunCancelledError", "SignalTimeoutError"]
    await asyncio.sleep(0)
    assert _pollers() == []


async def test_a_signal_stored_just_before_the_deadline_is_received(
    make_app: Callable[..., Workflow],
) -> None:
    """At its deadline a wait reads once more: a signal from elsewhere 0.1 s before it arrives."""
    wf = make_app()
    reads = _Reads(wf.store)

    @wf.workflow(id="last-minute")
    async def last_minute() -> Any:
        return await wf.signal("go", timeout=3.0)

    started = time.time()
    call = asyncio.ensure_future(last_minute())
    await _until(lambda: bool(reads.batches), "the first read")
    # By then the wait reads once a second; the read before the deadline is
    # most likely earlier than the signal.
    await asyncio.sleep(max(0.0, started + 3.0 - 0.1 - time.time()))
    await make_app().send_signal("last-minute", "go", "just in time")
    assert await asyncio.wait_for(call, 5) == "just in time"
