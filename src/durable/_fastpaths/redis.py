"""Taking the streams of a redis.asyncio pool's connections: redis-py's private attributes.

A connection pool of an event loop no longer in use cannot be closed by its
public ``disconnect()``/``aclose()``: they must be awaited on that loop. The
fast path takes each connection's stream writer, to be closed on that loop
when it next runs or at once if it is closed, and unlinks the streams from
the connection, which otherwise warns "unclosed Connection" when collected.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from durable import _fastpaths
from durable._fastpaths import asyncio as asyncio_fastpaths

__all__ = ["available", "take_writers"]

# Checked against redis-py 8.1: ConnectionPool keeps its connections in
# ``_available_connections`` and ``_in_use_connections``; a Connection keeps
# its streams in ``_reader`` and ``_writer``.
_MINIMUM = (8, 1)
_BELOW = (8, 2)


def available() -> bool:
    """Whether :func:`take_writers` works with this redis-py."""
    # Streams taken from a closed loop's connections need their sockets closed.
    return (
        _fastpaths.enabled()
        and _fastpaths.version_in_range(redis.__version__, _MINIMUM, _BELOW)
        and asyncio_fastpaths.available()
    )


def take_writers(pool: Any) -> list[asyncio.StreamWriter] | None:
    """The stream writers of every connection of ``pool``, now unlinked from them.

    None, having done nothing, when the fast path is not available.
    """
    if not available():
        return None
    writers: list[asyncio.StreamWriter] = []
    for conn in (
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
    ):
        writer = getattr(conn, "_writer", None)
        if isinstance(writer, asyncio.StreamWriter):
            writers.append(writer)
        if hasattr(conn, "_writer"):
            conn._writer = conn._reader = None
    return writers
