"""Retention: deleting finished runs in bounded batches, once or in a worker's background.

A prune deletes batch after batch, each its own transaction, so that a
store holding millions of old runs is never locked for long and a prune
interrupted half-way keeps what it did. Unfinished runs are never deleted:
the stores test the status in the statement that deletes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from durable.errors import ConfigurationError
from durable.stores._retention import check_prune, final_statuses
from durable.stores.base import FINAL_STATUSES, Store

__all__ = ["DEFAULT_BATCH_SIZE", "Pruner", "age_in_seconds", "prune"]

logger = logging.getLogger("durable.retention")

DEFAULT_BATCH_SIZE = 500
# A worker prunes at start, then this often (at most), and retries a failed
# prune after _RETRY: old runs only accumulate slowly, nothing is urgent.
_MAX_INTERVAL = 3600.0
_MIN_INTERVAL = 1.0
_RETRY = 60.0


def age_in_seconds(value: object, what: str) -> float:
    """``value`` (a timedelta or a number of seconds) as seconds > 0, or ConfigurationError."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{what} must be a timedelta or seconds, got {value!r}")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigurationError(f"{what} must be a positive, finite duration, got {value!r}")
    return seconds


async def prune(
    store: Store,
    app: str,
    *,
    older_than: float,
    statuses: Iterable[str] = FINAL_STATUSES,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Delete (or, with ``dry_run``, count) ``app``'s runs finished over ``older_than`` s ago.

    ``progress`` is called with the running total after each batch.
    """
    wanted = list(statuses) if not isinstance(statuses, str) else [statuses]
    check_prune(app, wanted, batch_size)
    final = final_statuses(wanted)
    cutoff = time.time() - older_than
    if not final:
        return 0
    if dry_run:
        count = await store.count_prunable_runs(app, finished_before=cutoff, statuses=final)
        if progress is not None:
            progress(count)
        return count
    total = 0
    while True:
        deleted = await store.prune_runs(
            app, finished_before=cutoff, statuses=final, limit=batch_size
        )
        total += deleted
        if progress is not None:
            progress(total)
        if deleted < batch_size:
            return total


class Pruner:
    """Prunes an app's finished runs older than ``retention`` seconds, now and periodically."""

    def __init__(self, store: Store, app: str, retention: float) -> None:
        self.store = store
        self.app = app
        self.retention = retention
        self.interval = min(_MAX_INTERVAL, max(_MIN_INTERVAL, retention / 10))

    async def run(self) -> None:
        """Prune until cancelled; a failure is logged and retried later, never raised."""
        while True:
            delay = self.interval
            try:
                deleted = await prune(self.store, self.app, older_than=self.retention)
            except Exception as exc:
                delay = min(self.interval, _RETRY)
                logger.warning(
                    "pruning finished runs of app %r failed, retrying in %.0fs: %r",
                    self.app,
                    delay,
                    exc,
                    extra={"action": "prune_failed"},
                )
            else:
                if deleted:
                    logger.info(
                        "pruned %d finished run(s) of app %r older than %.0fs",
                        deleted,
                        self.app,
                        self.retention,
                        extra={"action": "runs_pruned"},
                    )
            await asyncio.sleep(delay)
