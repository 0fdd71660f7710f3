"""Closing what a store opened on an event loop it no longer uses, awaiting nothing.

A store used from successive event loops (several ``asyncio.run`` calls)
drops the connections of the previous loop when it first runs on a new one.
They are closed on their own loop if that loop is still open (it may run
again), else at once, without it: a closed loop cannot run the close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


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


def close_without_loop(transport: asyncio.BaseTransport | None) -> None:
    """Close a transport whose event loop is closed, and its socket, synchronously.

    ``transport.close()`` marks the transport closing (so its stream writer
    does not warn) but then fails to schedule the socket's closing on the
    closed loop; asyncio has no public way to close that socket now, so it is
    closed here and unlinked from the transport (whose finalizer would warn
    otherwise), as the transport's own connection-lost callback does. A TLS
    transport wraps the socket transport, which is closed next.
    """
    while transport is not None:
        with contextlib.suppress(RuntimeError):  # "Event loop is closed"
            transport.close()
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()
            transport._sock = None  # type: ignore[attr-defined]
        transport = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
