"""One app used from successive event loops (several ``asyncio.run`` calls), on every store.

A module-level ``Workflow`` used by a script that calls ``asyncio.run`` more
than once, or by tests with function-scoped event loops: each loop must find
the store working, and nothing opened on an earlier loop may leak (no
ResourceWarning, no "Task was destroyed but it is pending", no error logged by
asyncio), also once everything is garbage-collected.

These tests are plain functions: they make and close their own loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
import sys
import threading
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import _services

from durable import Workflow
from durable.errors import ConfigurationError
from durable.stores.base import NewRun

KINDS = _services.STORE_KINDS


class _Collector(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"asyncio logged: {record.getMessage()}")


@contextlib.contextmanager
def _leaks() -> Iterator[list[str]]:
    """Everything that reports a leak, gathered, up to a final garbage collection.

    Warnings (ResourceWarning and the like), exceptions raised by finalizers,
    and errors asyncio logs ("Task was destroyed but it is pending", ...).
    """
    found: list[str] = []
    handler = _Collector(found)
    asyncio_logger = logging.getLogger("asyncio")
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        found.append(f"unraisable in {info.object!r}: {info.exc_value!r}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.unraisablehook = unraisable
        asyncio_logger.addHandler(handler)
        try:
            yield found
        finally:
            try:
                # A warning keeps its source object alive (a leaked connection,
                # say) and what that object holds is only collected, and warns,
                # once the warning is dropped: collect until nothing more warns.
                for _ in range(10):
                    gc.collect()
                    if not caught:
                        break
                    found.extend(f"{w.category.__name__}: {w.message}" for w in caught)
                    caught.clear()
            finally:
                asyncio_logger.removeHandler(handler)
                sys.unraisablehook = previous_hook


def _failure(scenario: Callable[[], None]) -> str | None:
    """Run ``scenario``; the description of its error, or None.

    The error itself is dropped here: its traceback would keep the store (and
    anything it leaked) alive past the test's final garbage collection.
    Skips and pytest.fail (not Exceptions) go through.
    """
    try:
        scenario()
    except Exception:
        return traceback.format_exc()
    return None


def _check(kind: str, scenario: Callable[[], None]) -> None:
    with _leaks() as leaks:
        failure = _failure(scenario)
    assert failure is None, f"{kind}: {failure}"
    assert leaks == [], f"{kind}: leaked {leaks}"


class _App:
    """A fresh store of one kind, and an app on it with a task and two workflows."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        # Made on a loop of its own, like everything else here.
        self.store, self._cleanup = asyncio.run(_services.new_store(kind, tmp_path))
        self.wf = wf = Workflow("loops", db=self.store)
        self.calls: list[int] = []

        @wf.task
        async def double(n: int) -> int:
            self.calls.append(n)
            return 2 * n

        @wf.workflow(id="doubled-{n}")
        async def doubled(n: int) -> int:
            return await double(n)

        @wf.workflow(id="waits-{n}")
        async def waits(n: int) -> int:
            await wf.sleep(0.01)
            payload: int = await wf.signal("go")
            return n + payload

        self.doubled = doubled
        self.waits = waits

    async def signalled(self, n: int, payload: int) -> int:
        """Run ``waits(n)`` and send it the signal it waits for."""
        run = asyncio.ensure_future(self.waits(n))
        await self.wf.send_signal(f"waits-{n}", "go", payload)
        return await run

    async def signalled_from_elsewhere(self, n: int, payload: int) -> int:
        """Run ``waits(n)`` and send its signal through another app object.

        As from another process: nothing wakes the wait here, the signal poller
        of this loop must read it.
        """
        run = asyncio.ensure_future(self.waits(n))
        await asyncio.sleep(0.1)
        await Workflow("loops", db=self.store).send_signal(f"waits-{n}", "go", payload)
        return await asyncio.wait_for(run, 10)

    def close(self) -> None:
        """Close the app, from a loop of its own, and remove what the test stored."""
        asyncio.run(self._close())

    async def _close(self) -> None:
        try:
            await self.wf.close()
        finally:
            await self._cleanup()


def _run(awaitable: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await awaitable

    return asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_one_app_serves_successive_asyncio_runs(kind: str, tmp_path: Path) -> None:
    def scenario() -> None:
        app = _App(kind, tmp_path)
        try:
            assert _run(app.doubled(1)) == 2
            assert _run(app.doubled(2)) == 4
            # A completed run answers with its stored output, without running again.
            assert _run(app.doubled(1)) == 2
            assert app.calls == [1, 2]
            assert _run(app.signalled(1, 41)) == 42
            run = _run(app.wf.get_run("doubled-2"))
            assert (run.status, run.output) == ("completed", 4)
            listed = _run(app.wf.list_runs())
            assert sorted(r.run_id for r in listed) == ["doubled-1", "doubled-2", "waits-1"]
        finally:
            app.close()

    _check(kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_signal_waits_are_polled_on_each_successive_loop(kind: str, tmp_path: Path) -> None:
    """Each asyncio.run gets a signal poller of its own, and none is left behind."""

    def scenario() -> None:
        app = _App(kind, tmp_path)
        try:
            assert _run(app.signalled_from_elsewhere(1, 10)) == 11
            assert _run(app.signalled_from_elsewhere(2, 20)) == 22
            # In-process sends still wake the waits at once on a later loop.
            assert _run(app.signalled(3, 30)) == 33
        finally:
            app.close()

    _check(kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_a_loop_left_open_closes_its_connections_when_it_runs_again(
    kind: str, tmp_path: Path
) -> None:
    def scenario() -> None:
        app = _App(kind, tmp_path)
        try:
            first = asyncio.new_event_loop()
            try:
                assert first.run_until_complete(app.doubled(1)) == 2
                # The first loop is still open, not running: the store moves on.
                assert _run(app.doubled(2)) == 4
                # Running again, the first loop closes what the store left on it...
                first.run_until_complete(asyncio.sleep(0.05))
                # ...and the store works on it again.
                assert first.run_until_complete(app.doubled(3)) == 6
            finally:
                first.close()
            assert _run(app.doubled(1)) == 2
            assert app.calls == [1, 2, 3]
        finally:
            app.close()

    _check(kind, scenario)


@pytest.mark.parametrize("waiting", ["claim", "step save"])
def test_sqlite_call_in_flight_when_its_loop_closes(waiting: str, tmp_path: Path) -> None:
    """A SQLite call still waiting for a lock when ``asyncio.run`` ends harms no later loop.

    Another connection holds the write lock, so the claim of a run (or the save
    of its step) waits on the store's connection thread; the caller gives up
    and its loop closes. Once the lock is gone, the call finishes on the thread
    with nobody to answer, and the next loops use the store as before.
    """

    def scenario() -> None:
        app = _App("sqlite", tmp_path)
        blocker = sqlite3.connect(tmp_path / "durable.db", isolation_level=None)
        closing = False
        try:

            @app.wf.task
            async def locked(n: int) -> int:
                # Taken on the loop thread while the store's connection is idle:
                # the save of this step is the next write, and it must wait.
                blocker.execute("BEGIN IMMEDIATE")
                return n

            @app.wf.workflow(id="locked-{n}")
            async def saves_locked(n: int) -> int:
                return await locked(n)

            async def gives_up() -> None:
                if waiting == "claim":
                    blocker.execute("BEGIN IMMEDIATE")
                    pending = app.doubled(1)
                else:
                    pending = saves_locked(1)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(pending, 0.3)

            assert list(_run(app.wf.list_runs())) == []  # the file and its schema exist
            asyncio.run(gives_up())
            assert blocker.in_transaction
            blocker.execute("ROLLBACK")
            assert _run(asyncio.wait_for(app.doubled(2), 10)) == 4
            assert _run(asyncio.wait_for(app.signalled(1, 41), 10)) == 42
            # The run whose claim was in flight: this process's earlier
            # execution owns it, gone, so it is taken over and completes.
            assert _run(asyncio.wait_for(app.doubled(1), 10)) == 2
            if waiting == "step save":
                assert _run(asyncio.wait_for(saves_locked(1), 10)) == 1
            assert app.calls == [2, 1]
            closing = True
        finally:
            blocker.close()
            # A store whose connection thread died never closes: fail, do not hang.
            if closing:
                app.close()

    _check("sqlite", scenario)


@pytest.mark.postgres
def test_postgres_calls_in_flight_on_a_loop_left_open() -> None:
    """A loop left open with PostgreSQL calls in flight finishes them when it runs again.

    On the first loop one call holds the only connection (an UPDATE waiting
    for a row lock) and another waits for it. Meanwhile the store moves to
    another loop. When the first loop runs again, the call in flight
    completes on its connection, which is closed as it comes back, and the
    waiting call moves the store back to the first loop and completes there.
    """

    def scenario() -> None:
        asyncpg = _services.import_driver("asyncpg")
        postgres = _services.import_driver("durable.stores.postgres")
        dsn = asyncio.run(_services.postgres_dsn())
        schema = _services.unique_name("pg")
        store = postgres.PostgresStore(dsn, schema=schema, max_size=1)
        first = asyncio.new_event_loop()
        try:
            new = NewRun("loops", "locked", "wf", "[]", None)
            claim = first.run_until_complete(store.claim_run(new, owner="o", lease_ttl=60))
            assert claim.acquired
            admin = first.run_until_complete(asyncpg.connect(dsn))
            try:
                lock = f"SELECT 1 FROM \"{schema}\".runs WHERE run_id = 'locked' FOR UPDATE"
                first.run_until_complete(admin.execute(f"BEGIN; {lock}"))
                cancel = first.create_task(store.request_cancel("loops", "locked"))
                read = first.create_task(store.get_run("loops", "locked"))
                first.run_until_complete(asyncio.sleep(0.2))
                assert not cancel.done()
                assert not read.done()
                # Another loop: a pool of its own, closed when that loop ends.
                run = _run(store.get_run("loops", "locked"))
                assert run is not None
                assert not run.cancel_requested
                first.run_until_complete(admin.execute("COMMIT"))
                cancelled, read_back = first.run_until_complete(
                    asyncio.wait_for(asyncio.gather(cancel, read), 10)
                )
                assert cancelled.cancel_requested
                assert read_back is not None
                run = first.run_until_complete(store.get_run("loops", "locked"))
                assert run.cancel_requested
                first.run_until_complete(store.close())
            finally:
                first.run_until_complete(admin.close())
        finally:
            first.close()
            asyncio.run(_services.drop_postgres_schema(dsn, schema))

    _check("postgres", scenario)


def test_two_loops_running_at_once_get_a_clear_error(tmp_path: Path) -> None:
    """A Workflow serves one running loop at a time; a second one is told so, not hung."""
    wf = Workflow("threads", db=tmp_path / "durable.db")
    started, release = threading.Event(), threading.Event()

    @wf.task
    async def hold() -> str:
        started.set()
        await asyncio.to_thread(release.wait, 30)
        return "held"

    @wf.workflow(id="first")
    async def first() -> str:
        return await hold()

    @wf.workflow(id="second")
    async def second() -> str:
        return "second"

    outcome: list[str] = []
    other = threading.Thread(target=lambda: outcome.append(asyncio.run(first())))
    other.start()
    try:
        assert started.wait(30)
        with pytest.raises(ConfigurationError, match="one event loop at a time"):
            asyncio.run(second())
    finally:
        release.set()
        other.join(30)
    assert outcome == ["held"]
    # Once that loop has stopped, this thread's loop may take the app over.
    assert asyncio.run(second()) == "second"
    asyncio.run(wf.close())
