"""Waking idle workers of this process when there is new work, or after a jittered poll."""

from __future__ import annotations

import asyncio
import heapq
import random
import time

__all__ = ["Wakeup"]


class Wakeup:
    """Set by enqueues and finished runs in this process, awaited by its workers.

    Runs enqueued by other processes are announced by the store's
    ``wait_for_work`` where it can (see the worker), else found by polling; the poll interval
    is jittered so that many idle workers do not query the store in step.
    A notification while no worker waits is kept for the next wait.
    Work known to come due later (a run parked here, an enqueue with a
    delay) is announced with :meth:`notify_at`: the waits end at that time
    instead of at the next poll.
    """

    __slots__ = ("_due", "_notified", "_waiters")

    def __init__(self) -> None:
        self._waiters: dict[asyncio.Future[None], asyncio.TimerHandle] = {}
        self._notified = False
        # Unix times at which known work comes due, earliest first.
        self._due: list[float] = []

    def notify(self) -> None:
        """Wake the workers of this process (from their event loop's thread)."""
        self._notified = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def notify_at(self, when: float) -> None:
        """Wake the workers of this process at Unix time ``when``, when work comes due."""
        heapq.heappush(self._due, when + _CLOCK_MARGIN)
        if len(self._due) > 2 * _MAX_DUE:
            # Bounded memory with many parked runs: the latest times are
            # dropped, and found by polling when they come.
            self._due = heapq.nsmallest(_MAX_DUE, self._due)
        for waiter, timer in list(self._waiters.items()):
            loop = waiter.get_loop()
            at = loop.time() + (when + _CLOCK_MARGIN - time.time())
            if not waiter.done() and at < timer.when():
                timer.cancel()
                self._waiters[waiter] = loop.call_at(at, _release, waiter)

    def take(self) -> bool:
        """Whether a notification came while no worker waited; clears it."""
        notified, self._notified = self._notified, False
        return notified

    async def wait(self, poll_interval: float) -> None:
        """Until notified, or ``poll_interval`` (±25%) has passed."""
        if self._notified:
            self._notified = False
            return
        delay = poll_interval * random.uniform(0.75, 1.25)
        if self._due:
            now = time.time()
            if self._due[0] <= now:
                # Came due: the worker's next pass claims it.
                while self._due and self._due[0] <= now:
                    heapq.heappop(self._due)
                return
            delay = min(delay, self._due[0] - now)
        loop = asyncio.get_running_loop()
        # A plain future and a timer, not asyncio.wait_for: before Python 3.12
        # wait_for can swallow a cancellation that arrives as the wait ends,
        # and a worker that missed its cancellation would serve on forever.
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[waiter] = loop.call_later(delay, _release, waiter)
        try:
            await waiter
        finally:
            self._waiters.pop(waiter).cancel()
        self._notified = False


# Work is claimed by the store's clock: wake a little after its due time, so
# that a claim does not find it a hair early and leave it to the next poll.
_CLOCK_MARGIN = 0.005
_MAX_DUE = 1024


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
