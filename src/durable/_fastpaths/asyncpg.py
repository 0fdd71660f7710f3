"""Closing an asyncpg connection whose event loop is closed: asyncpg's private attributes.

``Connection.terminate()`` on a closed loop marks the connection aborted (so
asyncpg does not warn when it is collected) but fails to schedule the closing
of its transport. asyncpg exposes no public handle on that transport: the
fast path reads ``Connection._transport`` so that
:func:`durable._fastpaths.asyncio.close_transport_now` can close its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from durable import _fastpaths
from durable._fastpaths import asyncio as asyncio_fastpaths

__all__ = ["available", "terminate_without_loop"]

# Checked against asyncpg 0.32: Connection keeps its transport in ``_transport``.
_MINIMUM = (0, 32)
_BELOW = (0, 33)


def available() -> bool:
    """Whether :func:`terminate_without_loop` can close sockets with this asyncpg."""
    return (
        _fastpaths.enabled()
        and _fastpaths.version_in_range(asyncpg.__version__, _MINIMUM, _BELOW)
        and asyncio_fastpaths.available()
    )


def _transport(conn: Any) -> asyncio.BaseTransport | None:
    transport = getattr(conn, "_transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


def terminate_without_loop(conn: Any) -> bool:
    """Terminate a connection of a closed event loop; True once its socket is closed too.

    False when the fast path is not available: the connection is marked
    aborted, and the caller must keep it from being collected, since its
    transport would warn.
    """
    transport = _transport(conn) if available() else None
    with contextlib.suppress(RuntimeError):  # "Event loop is closed"
        conn.terminate()
    return transport is not None and asyncio_fastpaths.close_transport_now(transport)
