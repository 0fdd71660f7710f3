"""Operating on many runs: ``wf.list_runs`` paging and filters, ``wf.queue_stats``, ``wf.requeue``.

The :class:`~durable.Workflow` methods check their arguments and call these;
the stores answer each query from an index.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from durable import _inspect
from durable.engine.lease import owner_is_dead
from durable.errors import ConfigurationError, RunConflictError, RunNotFoundError
from durable.stores.base import RUN_STATUSES, QueueCounts, RunRecord, RunStatus

if TYPE_CHECKING:
    from durable._workflow import Workflow

__all__ = ["QueueStats", "decode_cursor", "encode_cursor"]


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The state of one queue of an app, as :meth:`Workflow.queue_stats` reports it."""

    queue: str
    queued: int
    """Runs waiting in the queue: ``ready + delayed``."""
    ready: int
    """Queued runs a worker may start now."""
    delayed: int
    """Queued runs held back by ``delay``/``not_before``."""
    running: int
    """Runs of the queue executing (or parked on a wait) right now."""
    oldest_queued_at: datetime | None
    """When the oldest ready run was enqueued (aware UTC), None when none is ready."""


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def encode_cursor(run: RunRecord) -> str:
    """The opaque cursor of a listed run: the next page starts after it."""
    text = json.dumps([run.created_at, run.run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: object) -> tuple[float, str]:
    """The listing key a cursor holds; ConfigurationError when it is not a cursor."""
    if not isinstance(cursor, str):
        raise ConfigurationError(f"cursor must be a str (a RunInfo.cursor), got {cursor!r}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        created_at = run_id = None
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
        or not isinstance(run_id, str)
    ):
        raise ConfigurationError(
            f"cursor {cursor[:80]!r} is not a cursor returned by list_runs (RunInfo.cursor)"
        )
    return float(created_at), run_id


def timestamp(what: str, value: object, now: float) -> float | None:
    """``since``/``until`` as a Unix timestamp: a datetime, or a timedelta back from now."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ConfigurationError(
                f"{what} as a timedelta means that long ago and must not be negative, got {value!r}"
            )
        return now - value.total_seconds()
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(
                f"{what} must be a timezone-aware datetime (e.g. datetime.now(UTC)), "
                f"got naive {value!r}"
            )
        return value.timestamp()
    raise ConfigurationError(
        f"{what} must be a datetime or a timedelta (that long ago), got {value!r}"
    )


def check_filters(
    status: RunStatus | None, workflow: object, queue: object, id_prefix: object, limit: object
) -> RunStatus | None:
    """Refuse filters of the wrong type; the status, typed."""
    if status is not None and status not in RUN_STATUSES:
        raise ConfigurationError(f"status must be one of {RUN_STATUSES}, got {status!r}")
    for what, value in (("workflow", workflow), ("queue", queue), ("id_prefix", id_prefix)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{what} must be a str, got {value!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigurationError(f"limit must be an int > 0, got {limit!r}")
    return status


async def list_runs(
    wf: Workflow,
    *,
    status: RunStatus | None,
    workflow: str | None,
    queue: str | None,
    since: datetime | timedelta | None,
    until: datetime | timedelta | None,
    id_prefix: str | None,
    limit: int,
    cursor: str | None,
) -> list[_inspect.RunInfo]:
    status = check_filters(status, workflow, queue, id_prefix, limit)
    now = time.time()
    low = timestamp("since", since, now)
    high = timestamp("until", until, now)
    if low is not None and high is not None and low > high:
        raise ConfigurationError(f"since ({since!r}) is later than until ({until!r})")
    after = None if cursor is None else decode_cursor(cursor)
    await wf._executor.ensure_open()
    runs = await wf.store.list_runs(
        wf.name,
        status=status,
        workflow=workflow,
        limit=limit,
        queue=queue,
        since=low,
        until=high,
        id_prefix=id_prefix or None,
        after=after,
    )
    return [_inspect.run_info(run, cursor=encode_cursor(run)) for run in runs]


async def queue_stats(wf: Workflow, known: list[str]) -> list[QueueStats]:
    await wf._executor.ensure_open()
    counted = {c.queue: c for c in await wf.store.queue_stats(wf.name)}
    names = sorted(set(known) | set(counted))
    return [_stats(counted.get(name) or QueueCounts(name, 0, 0, 0, None)) for name in names]


def _stats(counts: QueueCounts) -> QueueStats:
    oldest = counts.oldest_ready_at
    return QueueStats(
        queue=counts.queue,
        queued=counts.ready + counts.delayed,
        ready=counts.ready,
        delayed=counts.delayed,
        running=counts.running,
        oldest_queued_at=None if oldest is None else _utc(oldest),
    )


async def requeue(wf: Workflow, run_id: str, default_queue: str) -> RunRecord:
    """Hand the run to the workers of its queue; the run as requeued."""
    await wf._executor.ensure_open()
    run = await wf.store.get_run(wf.name, run_id)
    if run is None:
        raise RunNotFoundError(f"app {wf.name!r} has no run {run_id!r}")
    where = f"cannot requeue run {run_id!r} of workflow {run.workflow!r}"
    if run.status == "running" and wf._executor.task_of(run_id) is not None:
        raise RunConflictError(f"{where}: it is executing in this process")
    wf_fn = wf._workflows.get(run.workflow)
    queue = (wf_fn.queue if wf_fn is not None else None) or default_queue
    owner = run.owner
    steal_from = owner if run.status == "running" and owner and owner_is_dead(owner) else None
    answer = await wf.store.requeue_run(wf.name, run_id, queue=queue, steal_from=steal_from)
    if answer is None:
        raise RunNotFoundError(f"app {wf.name!r} has no run {run_id!r}")
    stored, requeued = answer
    if requeued:
        return stored
    if stored.status == "completed":
        raise RunConflictError(f"{where}: it is completed (its output is stored)")
    if stored.status == "waiting":
        raise RunConflictError(
            f"{where}: it is parked until its wake time or signal, when a worker of its "
            f"queue {stored.queue!r} continues it"
        )
    lease = stored.lease_expires_at
    until = "" if lease is None else f" until {_utc(lease).isoformat()}"
    raise RunConflictError(
        f"{where}: it is running, owned by {stored.owner!r} whose lease is live{until}; "
        "cancel it, or requeue it once that owner is gone"
    )
