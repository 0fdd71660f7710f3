"""A thread that owns one sqlite3 connection and runs whole functions on it.

The SQLite store runs each operation (a statement, or a whole transaction) as
one function on the thread that owns its connection: the transaction never
interleaves with another coroutine's statements, and it costs one hop.

aiosqlite has no public way to run a function on its connection thread. Its
work queue (``Connection._tx``) holds ``(future, function)`` pairs; from 0.22
on, its worker skips the future when it is None, so a function queued that
way runs without aiosqlite touching any event loop (the store posts the
outcome itself, and a loop closed meanwhile costs nothing). 0.20 and 0.21
call ``future.get_loop()`` unconditionally, which would kill their thread:
those versions, any newer one not checked yet, and the
``DURABLE_DISABLE_FAST_PATHS=1`` switch all take the fallback, a
single-thread executor of the standard library that owns the connection.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final, Literal

import aiosqlite

from durable import _fastpaths

__all__ = ["VERIFIED", "ConnectionThread", "Kind", "connection_thread", "fast_path_available"]

# aiosqlite versions whose private work queue was read and checked: [0.22, 0.23).
VERIFIED: Final = ((0, 22), (0, 23))

Kind = Literal["aiosqlite", "executor"]


class ConnectionThread(abc.ABC):
    """One thread owning one sqlite3 connection; functions queued to it run in order."""

    kind: Kind

    @abc.abstractmethod
    async def open(self) -> None:
        """Run the connector on the thread: the connection is made there, and used there only."""

    @abc.abstractmethod
    def submit(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` for the thread; it must not raise (it reports its own outcome)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection on its thread, once what was queued before has run."""


def fast_path_available() -> bool:
    """True when aiosqlite's own thread can run our functions: switch on, version checked."""
    return _fastpaths.enabled() and _fastpaths.version_in_range(aiosqlite.__version__, *VERIFIED)


def connection_thread(connector: Callable[[], sqlite3.Connection]) -> ConnectionThread:
    """aiosqlite's connection thread when the fast path applies, else a plain executor."""
    if fast_path_available():
        thread = _AiosqliteThread.create(connector)
        if thread is not None:
            return thread
    return _ExecutorThread(connector)


class _AiosqliteThread(ConnectionThread):
    """aiosqlite's own worker thread, fed through its private work queue."""

    kind: Kind = "aiosqlite"

    def __init__(self, conn: aiosqlite.Connection, put: Callable[[Any], None]) -> None:
        self._conn = conn
        self._put = put

    @classmethod
    def create(cls, connector: Callable[[], sqlite3.Connection]) -> _AiosqliteThread | None:
        """The adapter, or None when the private attributes are not what was checked."""
        conn = aiosqlite.Connection(connector, iter_chunk_size=64)
        put = getattr(getattr(conn, "_tx", None), "put_nowait", None)
        if not callable(put) or not isinstance(getattr(conn, "_thread", None), threading.Thread):
            return None  # never started: nothing to stop
        return cls(conn, put)

    async def open(self) -> None:
        thread: threading.Thread = getattr(self._conn, "_thread")  # noqa: B009
        # aiosqlite's worker thread is not a daemon: a program that forgets
        # close() would hang at exit waiting for it. Committed data is already
        # on disk, so nothing is lost by letting the thread die.
        if thread.ident is None:
            thread.daemon = True
        try:
            await self._conn
        except BaseException:
            # aiosqlite queues its thread's stop without waiting for it: wait
            # here, or the thread may report to an event loop closed by then.
            if thread.ident is not None:
                thread.join(5)
            raise

    def submit(self, fn: Callable[[], None]) -> None:
        self._put((None, fn))

    async def close(self) -> None:
        await self._conn.close()


class _ExecutorThread(ConnectionThread):
    """A single-thread executor owning the connection: public APIs only."""

    kind: Kind = "executor"

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        self._connector = connector
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="durable-sqlite"
        )
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._db = await loop.run_in_executor(self._executor, self._connector)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def submit(self, fn: Callable[[], None]) -> None:
        self._executor.submit(fn)

    async def close(self) -> None:
        db, self._db = self._db, None
        try:
            if db is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        finally:
            self._executor.shutdown(wait=False)
