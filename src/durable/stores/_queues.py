"""How many runs a queue may start now: its flow control, for the stores written in Python.

The in-memory store hands a queue's runs to :func:`queue_room`; the SQLite
store counts its running runs and recent starts in SQL and asks
:func:`room_left`. PostgreSQL and Redis apply the same rule inside the server.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from durable.stores.base import NewRun, QueueLimits, RunRecord

__all__ = ["queued_record", "queue_room", "room_left"]


def queue_room(limits: QueueLimits, runs: Iterable[RunRecord], now: float) -> int:
    """How many more runs of the queue may start at store time ``now``.

    ``runs`` are the queue's runs (any status); only running ones and recent
    starts count.
    """
    running = started = 0
    window_start = now - limits.rate_limit[1] if limits.rate_limit is not None else None
    for run in runs:
        if run.status == "running":
            running += 1
        if (
            window_start is not None
            and run.started_at is not None
            and run.started_at > window_start
        ):
            started += 1
    return room_left(limits, running, started)


def room_left(limits: QueueLimits, running: int, started: int) -> int:
    """How many more runs of the queue may start, given its counts.

    ``running``: its runs with status ``running``; ``started``: its runs
    started within the rate limit's window. A store may count each only up
    to its limit: more changes nothing.
    """
    room = sys.maxsize
    if limits.concurrency is not None:
        room = min(room, limits.concurrency - running)
    if limits.rate_limit is not None:
        room = min(room, limits.rate_limit[0] - started)
    return max(room, 0)


def queued_record(new: NewRun, now: float) -> RunRecord:
    """The record ``enqueue_run`` stores for ``new`` at store time ``now``."""
    return RunRecord(
        app=new.app,
        run_id=new.run_id,
        workflow=new.workflow,
        status="queued",
        inputs=new.inputs,
        output=None,
        error=None,
        owner=None,
        token=0,
        lease_expires_at=None,
        attempts=0,
        cancel_requested=False,
        parent_run_id=new.parent_run_id,
        created_at=now,
        updated_at=now,
        queue=new.queue,
        priority=new.priority,
        not_before=new.not_before,
        trace_context=new.trace_context,
    )
