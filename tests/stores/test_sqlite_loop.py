"""SQLiteStore keeps every statement off the event loop thread, so timers stay on time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from durable import Workflow
from durable.stores.sqlite import SQLiteStore

_STEPS = 300


class _StatementThreads:
    """Which threads ran SQL on a connection: fed by sqlite3's trace callback."""

    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.statements = 0
        self._lock = threading.Lock()

    def __call__(self, statement: str) -> None:
        with self._lock:
            self.threads.add(threading.get_ident())
            self.statements += 1


async def _trace(store: SQLiteStore, tracer: _StatementThreads) -> None:
    # The callback is set on the connection's own thread, like any other use of it.
    def install(db: sqlite3.Connection) -> None:
        db.set_trace_callback(tracer)

    await store._call(install)


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    """Sleep 1 ms over and over, noting how late each wake-up came."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - before - 0.001)


async def test_workflow_beside_a_ticker_runs_no_sql_on_the_loop_thread(tmp_path: Path) -> None:
    """A few hundred FULL-synchronous steps run every statement on the connection thread."""
    store = SQLiteStore(tmp_path / "durable.db", synchronous="FULL")
    wf = Workflow("loop-app", db=store)

    @wf.task
    async def step(i: int) -> int:
        return i

    @wf.workflow(id="many-{n}")
    async def many(n: int) -> int:
        total = 0
        for i in range(n):
            total += await step(i)
        return total

    tracer = _StatementThreads()
    lags: list[float] = []
    stop = asyncio.Event()
    async with wf:
        await store.open()
        await _trace(store, tracer)
        ticking = asyncio.create_task(_ticker(lags, stop))
        assert await many(n=_STEPS) == sum(range(_STEPS))
        stop.set()
        await ticking
    # The claim, every step and the finish each ran at least one statement.
    assert tracer.statements > _STEPS
    assert threading.get_ident() not in tracer.threads
    assert len(tracer.threads) == 1
    assert lags  # the ticker kept running while the workflow did


async def test_concurrent_saves_run_no_sql_on_the_loop_thread(tmp_path: Path) -> None:
    """Group commits of many workflows at once also stay on the connection thread."""
    store = SQLiteStore(tmp_path / "durable.db", synchronous="NORMAL")
    wf = Workflow("loop-app", db=store)

    @wf.task
    async def step(i: int) -> int:
        return i

    @wf.workflow(id="conc-{k}")
    async def conc(k: int) -> int:
        return sum([await step(i) for i in range(10)])

    tracer = _StatementThreads()
    async with wf:
        await store.open()
        await _trace(store, tracer)
        results = await asyncio.gather(*(conc(k=k) for k in range(30)))
    assert results == [45] * 30
    assert tracer.statements > 30
    assert threading.get_ident() not in tracer.threads
