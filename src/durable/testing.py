"""Helpers for testing code that uses durable.

- :class:`InMemoryStore`: a store for tests (``Workflow("app", db=InMemoryStore())``).
- :func:`no_backoff`: retries happen at once; the waits they would have made are recorded.
- :func:`skip_sleeps`: durable sleeps end at once; the time they had left is recorded.
- ``StoreContract``: the test suite every Store must pass; subclass it with a
  ``store`` fixture to check your own Store (needs pytest and pytest-asyncio).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from durable import _backoff_clock
from durable.stores.memory import InMemoryStore as InMemoryStore

if TYPE_CHECKING:
    from durable._store_contract import StoreContract as StoreContract

__all__ = ["InMemoryStore", "StoreContract", "no_backoff", "skip_sleeps"]


@contextmanager
def no_backoff() -> Iterator[list[float]]:
    """Skip retry waits inside the block; yields the list of waits that were skipped.

    ::

        with no_backoff() as waits:
            await my_workflow()
        assert waits == [2.0, 4.0]
    """
    previous = _backoff_clock.recorded_waits
    waits: list[float] = []
    _backoff_clock.recorded_waits = waits
    try:
        yield waits
    finally:
        _backoff_clock.recorded_waits = previous


@contextmanager
def skip_sleeps() -> Iterator[list[float]]:
    """End durable sleeps (``wf.sleep``, ``wf.sleep_until``) at once inside the block.

    Yields the list of seconds each skipped sleep had left, so a test of a
    "wait a day, then remind" workflow runs instantly and can check the wait::

        with skip_sleeps() as slept:
            await reminder_flow(user_id=7)
        assert slept == [86400.0]   # approximately: the time left when it was reached
    """
    previous = _backoff_clock.skipped_sleeps
    slept: list[float] = []
    _backoff_clock.skipped_sleeps = slept
    try:
        yield slept
    finally:
        _backoff_clock.skipped_sleeps = previous


def __getattr__(name: str) -> Any:
    # pytest is only needed by those who run the contract suite.
    if name == "StoreContract":
        from durable._store_contract import StoreContract

        return StoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
