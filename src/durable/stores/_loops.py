"""Closing what a store opened on an event loop it no longer uses, awaiting nothing.

A store used from successive event loops (several ``asyncio.run`` calls)
drops the connections of the previous loop when it first runs on a new one.
They are closed on their own loop if that loop is still open (it may run
again), else at once, without it: a closed loop cannot run the close.

Closing a connection of a closed loop at once needs private attributes of
asyncio and of the driver (see ``durable._fastpaths``). So a store also arms
a :class:`LoopShutdownHook` on each loop it uses, which closes that loop's
connections while the loop shuts down (``asyncio.run`` and
``asyncio.Runner`` do so before closing it), with public APIs only. Only a
loop closed without shutting down, by a bare ``loop.close()``, leaves
connections a closed loop cannot close; without the fast paths the hook keeps
them referenced (the process holds their sockets until it exits) rather than
let them be collected with a ResourceWarning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["LoopShutdownHook", "close_on_loop"]


def close_on_loop(
    loop: asyncio.AbstractEventLoop | None,
    on_loop: Callable[[], None],
    without_loop: Callable[[], None],
) -> None:
    """Run ``on_loop`` on ``loop`` when it next runs, or ``without_loop`` now if it is closed."""
    if loop is not None and not loop.is_closed():
        try:
            loop.call_soon_threadsafe(on_loop)
            return
        except RuntimeError:
            pass  # The loop closed in the meantime.
    without_loop()


# Hooks armed and not yet run or disarmed. The loop holds its asynchronous
# generators weakly: this keeps them, and what they close, alive until then.
_armed: set[LoopShutdownHook] = set()


class LoopShutdownHook:
    """Awaits ``on_shutdown()`` while the event loop it was armed on shuts down.

    The loop's ``shutdown_asyncgens()`` closes every asynchronous generator
    started on it: the one suspended in :meth:`_wait` then runs its
    ``finally`` clause, on the loop, while the loop can still run the close.
    """

    def __init__(self, on_shutdown: Callable[[], Awaitable[None]]) -> None:
        self._on_shutdown = on_shutdown
        self._started = self._armed = False
        self._waiting = self._wait()

    async def _wait(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._armed:
                self._forget()
                await self._on_shutdown()

    async def arm(self) -> None:
        """Arm the hook on the running event loop; a hook is armed once at most."""
        if self._started:
            raise RuntimeError("a LoopShutdownHook is armed once at most")
        self._started = True
        # Starting the generator registers it with the running loop.
        await anext(self._waiting)
        self._armed = True
        _armed.add(self)

    def disarm(self) -> None:
        """Never run ``on_shutdown``: from any loop or none, awaiting nothing."""
        self._forget()
        # Finish the generator now: collected unfinished, it would ask its
        # loop, possibly closed, to close it.
        closing = self._waiting.aclose()
        with contextlib.suppress(StopIteration, RuntimeError):
            closing.send(None)
        closing.close()

    def _forget(self) -> None:
        self._armed = False
        _armed.discard(self)
