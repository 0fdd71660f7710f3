"""Helpers for testing code that uses durable.

- :class:`InMemoryStore`: a store for tests (``Workflow("app", db=InMemoryStore())``).
- :func:`fresh_store`: an app uses a new, empty store inside the block (one per test).
- :func:`no_backoff`: retries happen at once; the waits they would have made are recorded.
- :func:`skip_sleeps`: durable sleeps end at once; the time they had left is recorded.
- ``StoreContract``: the test suite every Store must pass; subclass it with a
  ``store`` fixture to check your own Store (needs pytest and pytest-asyncio).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from durable.engine import clock
from durable.stores.memory import InMemoryStore as InMemoryStore

if TYPE_CHECKING:
    from durable._workflow import Workflow
    from durable.stores.base import Store
    from durable.testing.contract import StoreContract as StoreContract

__all__ = ["InMemoryStore", "StoreContract", "fresh_store", "no_backoff", "skip_sleeps"]


@asynccontextmanager
async def fresh_store(wf: Workflow, store: Store | None = None) -> AsyncIterator[Store]:
    """Give ``wf`` a new, empty store inside the block; yields that store.

    An app is usually defined once, at module level, so runs recorded by one
    test would be found (and replayed) by the next. Use this in a fixture so
    that each test starts with no runs::

        @pytest.fixture(autouse=True)
        async def isolated_runs():
            async with fresh_store(wf) as store:
                yield store

    ``store`` defaults to a new :class:`InMemoryStore`; pass a SQLite store on
    a temporary path to test against a real file. The store is closed at the
    end of the block and ``wf`` goes back to the store it had. Raises
    :class:`~durable.errors.ConfigurationError` if ``wf`` executes runs
    when the block starts.
    """
    store = InMemoryStore() if store is None else store
    previous = wf._replace_store(store)
    try:
        yield store
    finally:
        await wf.close()
        wf._replace_store(previous)


@contextmanager
def no_backoff() -> Iterator[list[float]]:
    """Skip retry waits inside the block; yields the list of waits that were skipped.

    ::

        with no_backoff() as waits:
            await my_workflow()
        assert waits == [2.0, 4.0]
    """
    previous = clock.recorded_waits
    waits: list[float] = []
    clock.recorded_waits = waits
    try:
        yield waits
    finally:
        clock.recorded_waits = previous


@contextmanager
def skip_sleeps() -> Iterator[list[float]]:
    """End durable sleeps (``wf.sleep``, ``wf.sleep_until``) at once inside the block.

    Yields the list of seconds each skipped sleep had left, so a test of a
    "wait a day, then remind" workflow runs instantly and can check the wait::

        with skip_sleeps() as slept:
            await reminder_flow(user_id=7)
        assert slept == [86400.0]   # approximately: the time left when it was reached
    """
    previous = clock.skipped_sleeps
    slept: list[float] = []
    clock.skipped_sleeps = slept
    try:
        yield slept
    finally:
        clock.skipped_sleeps = previous


def __getattr__(name: str) -> Any:
    # pytest is only needed by those who run the contract suite.
    if name == "StoreContract":
        from durable.testing.contract import StoreContract

        return StoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
