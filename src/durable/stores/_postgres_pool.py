"""A small connection pool for :class:`~durable.stores.postgres.PostgresStore`.

Taking an idle connection and giving it back cost no await and no task, where
``asyncpg.Pool`` spends a task and several event-loop turns on each
acquire/release pair: with a step costing one round trip, that overhead was a
sizeable part of it. Sessions never change state (no SET, LISTEN, cursors or
session-level locks), so a returned connection needs no reset. The one
session that LISTENs is a dedicated connection (:meth:`ConnectionPool.open_dedicated`),
never pooled, closed with the pool.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

from durable._fastpaths import asyncpg as asyncpg_fastpaths
from durable.errors import StoreError
from durable.stores._loops import LoopShutdownHook, close_on_loop

Connect = Callable[[], Awaitable[Any]]


class PoolAbandonedError(ConnectionError):
    """The pool was dropped for another event loop's: retry on the store's current pool."""

    def __init__(self) -> None:
        super().__init__("the connection pool of an event loop no longer in use was dropped")


class ConnectionPool:
    """Up to ``max_size`` connections; callers beyond that wait in FIFO order."""

    def __init__(self, connect: Connect, *, min_size: int, max_size: int) -> None:
        if max_size < 1 or min_size > max_size:
            raise ValueError("need 1 <= max_size and min_size <= max_size")
        self._connect = connect
        self._min_size = min_size
        self._max_size = max_size
        self._idle: list[Any] = []
        # Every connection opened and not yet given up, idle or in use.
        self._conns: set[Any] = set()
        # Connections open, being opened, or in use; never above max_size.
        self._size = 0
        # A waiter receives a connection, or None: a free slot to open one in.
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._closed = False
        self._abandoned = False
        self._parked: set[Any] = set()
        # Connections outside the slots (the listener), closed with the pool.
        self._dedicated: set[Any] = set()
        self._drained: asyncio.Future[None] | None = None
        self._shutdown_hook = LoopShutdownHook(self._close_at_shutdown)

    async def open(self) -> None:
        """Open ``min_size`` connections, on the running loop, which the pool then belongs to."""
        await self._shutdown_hook.arm()
        while self._size < self._min_size:
            self._size += 1
            self._idle.append(await self._open_slot())

    async def _open_slot(self) -> Any:
        """Open a connection in a slot already counted in ``_size``."""
        try:
            conn = await self._connect()
        except BaseException:
            self._free_slot()
            raise
        self._conns.add(conn)
        return conn

    async def open_dedicated(self) -> Any:
        """A connection of its own, outside the pool's slots, closed with the pool."""
        if self._closed:
            raise self._closed_error()
        conn = await self._connect()
        if self._closed:
            conn.terminate()
            raise self._closed_error()
        self._conns.add(conn)
        self._dedicated.add(conn)
        return conn

    def drop_dedicated(self, conn: Any) -> None:
        """Close a connection of :meth:`open_dedicated` now, awaiting nothing."""
        if conn in self._dedicated:
            self._dedicated.discard(conn)
            self._conns.discard(conn)
        if not conn.is_closed():
            conn.terminate()

    def _terminate_dedicated(self) -> None:
        for conn in list(self._dedicated):
            self.drop_dedicated(conn)

    def _discard(self, conn: Any) -> None:
        """Give up a closed connection and its slot."""
        self._conns.discard(conn)
        self._free_slot()

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._size -= 1
        if self._size == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _closed_error(self) -> Exception:
        if self._abandoned:
            return PoolAbandonedError()
        return StoreError("the PostgreSQL store is closed")

    def acquire_idle(self) -> Any | None:
        """An idle connection at once, or None: :meth:`acquire` without awaiting."""
        if self._closed:
            return None
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._discard(conn)
        return None

    async def acquire(self) -> Any:
        if self._closed:
            raise self._closed_error()
        conn = self.acquire_idle()
        if conn is not None:
            return conn
        if self._size < self._max_size:
            self._size += 1
            return await self._open_slot()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except asyncio.CancelledError:
            # Handed a connection or a slot just as the wait was cancelled:
            # pass it on rather than lose it.
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self.release(handed)
            raise
        if conn is None:
            if self._closed:
                # A slot freed by a connection given back after an abandon.
                self._free_slot()
                raise self._closed_error()
            return await self._open_slot()
        return conn

    def release(self, conn: Any) -> None:
        """Give a connection back; a closed or broken one frees its slot."""
        if self._closed or conn.is_closed():
            if not conn.is_closed():
                conn.terminate()
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def close(self) -> None:
        """Close idle connections, then wait for the ones in use to come back."""
        self._closed = True
        self._fail_waiters()
        self._terminate_dedicated()
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
            self._discard(conn)
        if self._size > 0:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        self._shutdown_hook.disarm()

    def abandon(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Let go of the pool of an event loop no longer in use, awaiting nothing.

        Connections are bound to the loop they were opened on. If that loop is
        still open (it may run again), its idle connections are closed and its
        waiters told to retry when it next runs, and connections in use are
        closed as they come back. If it is closed, every connection is closed
        now, without it, where ``durable._fastpaths.asyncpg`` can; otherwise
        the pool's shutdown hook keeps them referenced.
        """
        self._closed = self._abandoned = True
        close_on_loop(loop, self._close_idle, self._close_without_loop)

    def _fail_waiters(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self._closed_error())

    def _close_idle(self) -> None:
        self._fail_waiters()
        self._terminate_dedicated()
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()
            self._discard(conn)

    def _close_without_loop(self) -> None:
        conns, self._conns = self._conns, set()
        self._idle = []
        self._dedicated.clear()
        self._waiters.clear()
        closed = [asyncpg_fastpaths.terminate_without_loop(conn) for conn in conns]
        if all(closed):
            self._shutdown_hook.disarm()
        else:
            # The hook keeps the pool, and the connections whose sockets
            # stayed open, from being collected with a warning.
            self._parked = conns

    async def _close_at_shutdown(self) -> None:
        """Close every connection while the pool's loop shuts down: none will come back."""
        self._closed = True
        self._fail_waiters()
        conns, self._conns = self._conns, set()
        self._idle = []
        self._dedicated.clear()
        await asyncio.gather(*(self._close_now(conn) for conn in conns))

    async def _close_now(self, conn: Any) -> None:
        if not conn.is_closed():
            try:
                await conn.close(timeout=1)
            except Exception:
                conn.terminate()
                # The transport closes its socket on the loop's next turn.
                await asyncio.sleep(0)
