"""Waking idle workers of this process when there is new work, or after a jittered poll."""

from __future__ import annotations

import asyncio
import contextlib
import random

__all__ = ["Wakeup"]


class Wakeup:
    """A flag set by enqueues and finished runs in this process, awaited by its workers.

    Runs enqueued by other processes are found by polling; the poll interval
    is jittered so that many idle workers do not query the store in step.
    """

    __slots__ = ("_event", "_loop")

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self) -> None:
        """Wake the workers of this process (from their event loop's thread)."""
        if self._event is not None:
            self._event.set()

    async def wait(self, poll_interval: float) -> None:
        """Until notified, or ``poll_interval`` (±25%) has passed."""
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._event, self._loop = asyncio.Event(), loop
        timeout = poll_interval * random.uniform(0.75, 1.25)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()
