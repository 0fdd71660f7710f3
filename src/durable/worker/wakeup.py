"""Waking idle workers of this process when there is new work, or after a jittered poll."""

from __future__ import annotations

import asyncio
import random

__all__ = ["Wakeup"]


class Wakeup:
    """Set by enqueues and finished runs in this process, awaited by its workers.

    Runs enqueued by other processes are announced by the store's
    ``wait_for_work`` where it can (see the worker), else found by polling; the poll interval
    is jittered so that many idle workers do not query the store in step.
    A notification while no worker waits is kept for the next wait.
    """

    __slots__ = ("_notified", "_waiters")

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._notified = False

    def notify(self) -> None:
        """Wake the workers of this process (from their event loop's thread)."""
        self._notified = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def take(self) -> bool:
        """Whether a notification came while no worker waited; clears it."""
        notified, self._notified = self._notified, False
        return notified

    async def wait(self, poll_interval: float) -> None:
        """Until notified, or ``poll_interval`` (±25%) has passed."""
        if self._notified:
            self._notified = False
            return
        loop = asyncio.get_running_loop()
        # A plain future and a timer, not asyncio.wait_for: before Python 3.12
        # wait_for can swallow a cancellation that arrives as the wait ends,
        # and a worker that missed its cancellation would serve on forever.
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(poll_interval * random.uniform(0.75, 1.25), _release, waiter)
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)
        self._notified = False


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
