"""The waiters of ``Store.wait_for_work`` on one event loop, woken per app."""

from __future__ import annotations

import asyncio

__all__ = ["WorkWaiters", "signal_topic"]


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

    async def wait(self, app: str, seconds: float) -> bool:
        """True once woken for ``app``; False after ``seconds``."""
        if app in self._pending:
            self._pending.discard(app)
            return True
        waiter: asyncio.Future[bool] = self._loop.create_future()
        timer = self._loop.call_later(max(0.0, seconds), _timeout, waiter)
        waiters = self._waiters.setdefault(app, set())
        waiters.add(waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            waiters.discard(waiter)
            if not waiters and self._waiters.get(app) is waiters:
                del self._waiters[app]


def _timeout(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
