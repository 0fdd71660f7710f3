"""Durable waits inside a workflow: sleeps and signals, each recorded as a step of its run.

A sleep is one step whose result is its wake-up time, stored before the wait
begins: after a crash the resumed run sleeps only what remains, and a sleep
whose time has passed replays at once.

A signal wait is one step whose result is the payload it received (and the
signal's index). Signals of one name are numbered 0, 1, 2, ... in arrival
order by the store; a wait takes the lowest index no other wait of that name
in the run has received, so the k-th wait receives the k-th signal and a
signal sent before anyone waits is kept. A wait that times out takes no
signal, and its failure is recorded so that replay raises it again. A
timeout's deadline is itself a step, recorded when the wait starts, so a
crash does not restart the clock.

A signal wait does not read the store itself: the waits of an app share one
poller per event loop (``_signal_poller``), which reads every due wait's signal
with one ``Store.read_signals`` call, each wait on its own growing delay (20 ms
up to 1 s). A signal sent through the same app in this process makes the
poller read it at once; a cancel asked for here wakes the waiter at once.
Between reads a waiter wakes at least once per heartbeat (1 s at most) to look
at its run's cancel and lease flags, and at its deadline it times out only
after one more read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from durable.engine import clock, serde
from durable.engine.context import RunContext, current_run
from durable.engine.parking import ParkPolicy, may_park, park
from durable.engine.signal_poller import ListenSignals, ReadSignals, SignalPoller, Watch
from durable.engine.steps import ensure_may_continue, new_record, save, step_outcome
from durable.errors import (
    ConfigurationError,
    NotInWorkflowError,
    ResultTooLargeError,
    SerializationError,
    SignalTimeoutError,
)
from durable.stores.base import StepRecord, StepStatus

SLEEP_TASK = "durable.sleep"
SIGNAL_TASK_PREFIX = "durable.signal:"
DEADLINE_TASK_PREFIX = "durable.signal-deadline:"

# Upper bound between two looks at the run's cancel and lease flags while waiting.
_FLAG_CHECK_MAX = 1.0


def context_for(what: str) -> RunContext:
    """The run being executed, or a clear error when ``what`` is used outside one."""
    ctx = current_run.get()
    if ctx is None:
        raise NotInWorkflowError(
            f"{what} can only be awaited in the body of a @wf.workflow function; it was "
            "called outside a workflow (or inside a task, whose body is plain code)"
        )
    return ctx


def seconds_of(value: object, what: str, *, allow_zero: bool = True) -> float:
    """A finite, non-negative number of seconds from a number or a timedelta."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{what} must be a number of seconds or a timedelta, got {value!r}"
        )
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigurationError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def timestamp_of(when: object) -> float:
    """A Unix timestamp from a timezone-aware datetime or a number."""
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ConfigurationError(
                f"sleep_until() needs a timezone-aware datetime, got the naive {when!r}; "
                "e.g. datetime.now(timezone.utc) + timedelta(days=1)"
            )
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ConfigurationError(
            f"sleep_until() needs a timezone-aware datetime or a Unix timestamp, got {when!r}"
        )
    return float(when)


def check_signal_name(name: object) -> str:
    """``name`` if every store can keep it, else ConfigurationError naming it.

    Checked where the name enters (``wf.signal``, ``send_signal``): a name no
    store accepts would otherwise fail the read that the waits of the process
    share, and with it the waits of other runs.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a signal name must be a non-empty string, got {name!r}")
    import unicodedata  # on first use: import durable stays cheap

    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise ConfigurationError(
                f"signal name {name[:80]!r} contains the control character {ch!r}"
            )
        if category == "Cs":
            raise ConfigurationError(f"signal name {name[:80]!r} contains a lone surrogate")
    return name


def encode_payload(payload: object, *, name: str, run_id: str, limit: int) -> str:
    what = f"the payload of signal {name!r} for run {run_id!r}"
    try:
        text = serde.dumps(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} cannot be stored as JSON: {exc}") from exc
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ResultTooLargeError(f"{what} is {size} bytes of JSON, over the limit of {limit}")
    return text


# -- waking waiters in this process ---------------------------------------------------------


class _Waiter:
    __slots__ = ("ctx", "event", "watch")

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.event = asyncio.Event()
        # A signal wait's place in the app's poller; None for a sleep.
        self.watch: Watch | None = None

    async def wait(self, seconds: float) -> None:
        """Return after ``seconds``, or earlier when woken."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.event.wait()
        self.event.clear()


class Waits:
    """The sleeps and signal waits in progress in this process, per app.

    ``read`` reads signals from the app's store; the signal waits share one
    :class:`SignalPoller` per event loop that calls it. ``listen`` waits for
    the store's news of a signal sent to the app.
    """

    def __init__(self, read: ReadSignals, listen: ListenSignals | None = None) -> None:
        self._read = read
        self._listen = listen
        self._waiters: dict[str, set[_Waiter]] = {}
        # Signal indexes being waited for right now, per run execution and name.
        self._claimed: dict[tuple[RunContext, str], set[int]] = {}
        self._poller: SignalPoller | None = None

    @contextlib.contextmanager
    def waiting(self, ctx: RunContext) -> Iterator[_Waiter]:
        waiter = _Waiter(ctx)
        self._waiters.setdefault(ctx.run_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(ctx.run_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[ctx.run_id]

    @contextlib.contextmanager
    def waiting_for_signal(
        self, ctx: RunContext, name: str, index: int
    ) -> Iterator[tuple[_Waiter, Watch]]:
        """A waiter, and its watch that reads the ``index``-th signal ``name`` of the run."""
        loop = asyncio.get_running_loop()
        if self._poller is None or self._poller.loop is not loop:
            # The poller of an earlier loop stays with the waits made there.
            self._poller = SignalPoller(self._read, loop, self._listen)
        poller = self._poller
        with self.waiting(ctx) as waiter:
            watch = poller.watch((ctx.run_id, name, index), waiter.event, _flag_check_period(ctx))
            waiter.watch = watch
            try:
                yield waiter, watch
            finally:
                poller.discard(watch)

    def signal_sent(self, run_id: str, name: str) -> None:
        for waiter in self._waiters.get(run_id, ()):
            if waiter.watch is not None and waiter.watch.key[1] == name:
                waiter.watch.read_soon()

    def park_now(self, policy: ParkPolicy) -> None:
        """Wake the waits of the runs executed under ``policy``: they park at once."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                if waiter.ctx.park is policy:
                    waiter.event.set()

    def cancel_requested(self, run_id: str) -> None:
        """Wake the waits of ``run_id`` and of the child runs it is waiting on."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                cancelled = waiter.ctx.descends_from(run_id)
                if cancelled is not None:
                    cancelled.cancel_requested = True
                    waiter.event.set()

    def claim_index(self, ctx: RunContext, name: str) -> int:
        """The lowest signal index of ``name`` that no wait of this run has taken."""
        claimed = self._claimed.setdefault((ctx, name), set())
        task = SIGNAL_TASK_PREFIX + name
        received = {
            _decoded(record)["index"]
            for record in ctx.steps.values()
            if record.task == task and record.status == "completed" and record.result is not None
        }
        index = 0
        while index in claimed or index in received:
            index += 1
        claimed.add(index)
        return index

    def release_index(self, ctx: RunContext, name: str, index: int) -> None:
        claimed = self._claimed.get((ctx, name))
        if claimed is not None:
            claimed.discard(index)
            if not claimed:
                del self._claimed[(ctx, name)]


def _decoded(record: StepRecord) -> dict[str, Any]:
    assert record.result is not None
    value = serde.loads(record.result)
    assert isinstance(value, dict)
    return value


def _flag_check_period(ctx: RunContext) -> float:
    # The heartbeat refreshes the cancel and lease flags once per interval.
    return min(ctx.runtime.heartbeat, _FLAG_CHECK_MAX)


# -- sleep ----------------------------------------------------------------------------------


async def sleep_step(
    ctx: RunContext, step_id: str, position: int, *, seconds: float | None, until: float | None
) -> None:
    """Sleep until the recorded wake-up time, recording it on first execution."""
    ensure_may_continue(ctx)
    record = ctx.recorded(SLEEP_TASK, step_id, position)
    if record is None:
        now = time.time()
        wake_at = now + seconds if seconds is not None else until
        result = serde.dumps({"wake_at": wake_at})
        record = new_record(
            step_id,
            position,
            SLEEP_TASK,
            "completed",
            result=result,
            started_at=now,
            finished_at=now,
        )
        record = await save(ctx, record)
    if record.status != "completed":
        step_outcome(ctx, record, None)
    wake_at = float(_decoded(record)["wake_at"])
    if clock.skipped_sleeps is not None:
        clock.skipped_sleeps.append(max(0.0, wake_at - time.time()))
        return
    policy = may_park(ctx)
    with ctx.runtime.waits.waiting(ctx) as waiter:
        while True:
            ensure_may_continue(ctx)
            remaining = wake_at - time.time()
            if remaining <= 0:
                return
            if policy is not None and policy.parks(remaining):
                await park(ctx, policy, wake_at=wake_at)
            await waiter.wait(min(remaining, _flag_check_period(ctx)))


# -- signals --------------------------------------------------------------------------------


async def signal_step(
    ctx: RunContext,
    name: str,
    step_id: str,
    position: int,
    *,
    limit: float | None,
    deadline_step: tuple[str, int] | None,
) -> Any:
    """The payload of the signal this wait receives, waiting for it if need be."""
    ensure_may_continue(ctx)
    deadline_record = None
    if deadline_step is not None:
        deadline_record = ctx.recorded(DEADLINE_TASK_PREFIX + name, *deadline_step)
    task = SIGNAL_TASK_PREFIX + name
    record = ctx.recorded(task, step_id, position)
    if record is None:
        deadline: float | None = None
        if deadline_step is not None and limit is not None:
            if deadline_record is None:
                deadline_record = await _record_deadline(ctx, name, *deadline_step, limit)
            deadline = float(_decoded(deadline_record)["deadline"])
        record = await _receive(ctx, name, step_id, position, deadline, limit)
    if record.status == "completed":
        return _decoded(record)["payload"]
    return step_outcome(ctx, record, None)


async def _record_deadline(
    ctx: RunContext, name: str, step_id: str, position: int, limit: float
) -> StepRecord:
    now = time.time()
    task = DEADLINE_TASK_PREFIX + name
    result = serde.dumps({"deadline": now + limit})
    record = new_record(
        step_id, position, task, "completed", result=result, started_at=now, finished_at=now
    )
    return await save(ctx, record)


async def _receive(
    ctx: RunContext,
    name: str,
    step_id: str,
    position: int,
    deadline: float | None,
    limit: float | None,
) -> StepRecord:
    waits = ctx.runtime.waits
    started = time.time()
    index = waits.claim_index(ctx, name)
    policy = may_park(ctx)
    park_at = None if policy is None else started + policy.after
    try:
        with waits.waiting_for_signal(ctx, name, index) as (waiter, watch):
            while True:
                ensure_may_continue(ctx)
                if watch.error is not None:
                    raise watch.error
                now = time.time()
                if watch.payload is not None:
                    status: StepStatus = "completed"
                    result: str | None = f'{{"index":{index},"payload":{watch.payload}}}'
                    error: str | None = None
                    break
                pause = _flag_check_period(ctx)
                if policy is not None and (policy.now or (park_at is not None and now >= park_at)):
                    if policy.parks(None if deadline is None else deadline - now):
                        # Parked until the deadline or the signal: the store
                        # makes it due at once if the signal came meanwhile.
                        await park(ctx, policy, wake_at=deadline, signal=(name, index))
                    park_at = None  # its deadline is near: wait for it here
                elif park_at is not None:
                    pause = min(pause, park_at - now)
                if deadline is not None and now < deadline:
                    pause = min(pause, deadline - now)
                elif deadline is not None and watch.last_look():
                    # Timed out only after a read made once the deadline passed.
                    timed_out = SignalTimeoutError(
                        f"run {ctx.run_id!r} of workflow {ctx.workflow!r}: no signal "
                        f"{name!r} arrived within {limit:g}s"
                    )
                    status, result, error = "failed", None, serde.encode_error(timed_out)
                    break
                watch.keep_polled()
                await waiter.wait(pause)
        task = SIGNAL_TASK_PREFIX + name
        record = new_record(
            step_id,
            position,
            task,
            status,
            result=result,
            error=error,
            started_at=started,
            finished_at=now,
        )
        stored = await save(ctx, record)
        # Later waits of this execution must see this index as taken.
        ctx.steps[step_id] = stored
        return stored
    finally:
        waits.release_index(ctx, name, index)
