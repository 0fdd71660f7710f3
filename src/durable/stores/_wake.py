"""The waiters of ``Store.wait_for_work`` on one event loop, woken per app."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

__all__ = ["WorkWaiters", "signal_topic", "slot_topic"]

# Stores that build a slot topic in SQL or Lua spell this separator there.
SLOT_MARK = "\x1fslot\x1f"


def slot_topic(app: str, queue: str) -> str:
    """What a finished run of ``queue`` announces: a slot of that queue is free.

    Only the workers of a queue capped across workers listen for it: for
    any other queue a finish frees nothing another process could use.
    """
    return f"{app}{SLOT_MARK}{queue}"


def signal_topic(app: str) -> str:
    """What a signal sent to a run of ``app`` announces, beside the app's work.

    A name no app is likely to have: a clash would only wake waits in vain.
    """
    return f"{app}\x1fsignal"


class WorkWaiters:
    """Futures of the ``wait_for_work`` calls of one event loop, by app.

    A wake-up for an app no call is waiting on is kept for that app's next
    wait (an enqueue that arrives while its worker claims is not lost until
    the next poll); the futures answer True when woken, False at the timeout.
    """

    __slots__ = ("_loop", "_pending", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._pending: set[str] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def waiting(self) -> bool:
        """Whether any wait is pending."""
        return any(self._waiters.values())

    def wake(self, app: str) -> None:
        """Wake the waits on ``app``, or the next one if none is waiting (on the loop)."""
        woken = False
        for waiter in self._waiters.get(app, ()):
            if not waiter.done():
                waiter.set_result(True)
                woken = True
        if not woken:
            self._pending.add(app)

    def wake_all(self) -> None:
        """Wake every wait (notifications may have been missed): a pass finds out."""
        for app in list(self._waiters):
            self.wake(app)

    def release_all(self) -> None:
        """End every wait with False (the store closes) and forget kept wake-ups."""
        self._pending.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)

    async def wait(self, app: str, seconds: float, also: Sequence[str] = ()) -> bool:
        """True once woken for ``app`` or one of the topics ``also``; False after ``seconds``."""
        topics = (app, *also)
        woken = [topic for topic in topics if topic in self._pending]
        if woken:
            self._pending.difference_update(woken)
            return True
        waiter: asyncio.Future[bool] = self._loop.create_future()
        timer = self._loop.call_later(max(0.0, seconds), _timeout, waiter)
        for topic in topics:
            self._waiters.setdefault(topic, set()).add(waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            for topic in topics:
                waiters = self._waiters.get(topic)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[topic]


def _timeout(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
