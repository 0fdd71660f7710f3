"""Listing and requeue rules shared by the stores: id-prefix ranges, keyset order, requeue.

Run ids are ordered by code point everywhere (SQLite's BINARY collation,
PostgreSQL's ``"C"``, Redis' byte order of UTF-8 and Python's ``str`` all
agree), so an id prefix is a range of that order and a page of
:meth:`~durable.stores.base.Store.list_runs` ends at a definite place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from durable.stores._checks import check_names
from durable.stores.base import QueueCounts, RunRecord, RunStatus

__all__ = [
    "ListQuery",
    "merge_counts",
    "decide_requeue",
    "listing_key",
    "prefix_end",
    "requeued_record",
]

_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_end(prefix: str) -> str | None:
    """The least id greater than every id starting with ``prefix``; None when there is none.

    ``prefix <= run_id < prefix_end(prefix)`` holds exactly for the ids that
    start with ``prefix``: a range an index on the run id answers, where a
    ``LIKE`` pattern would need escaping and, on PostgreSQL, a matching
    operator class to use an index at all.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code in _SURROGATES:
            code = _SURROGATES.stop  # not storable text; the next one is
        if code <= _MAX_CODE_POINT:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class ListQuery:
    """The arguments of ``list_runs``, with the conditions a SQL store writes for them."""

    app: str
    status: RunStatus | None = None
    workflow: str | None = None
    queue: str | None = None
    since: float | None = None
    until: float | None = None
    id_prefix: str | None = None
    after: tuple[float, str] | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        check_names(app=self.app, workflow=self.workflow, queue=self.queue)
        check_names(id_prefix=self.id_prefix, cursor=None if self.after is None else self.after[1])

    def conditions(self) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """The names of the conditions that apply, and their parameters in that order.

        Names: ``status``, ``workflow``, ``queue``, ``since``, ``until``,
        ``prefix_start``, ``prefix_end`` (one parameter each) and ``after``
        (two: created_at, run id).
        """
        names: list[str] = []
        params: list[Any] = []
        for name in ("status", "workflow", "queue", "since", "until"):
            value = getattr(self, name)
            if value is not None:
                names.append(name)
                params.append(value)
        if self.id_prefix:
            names.append("prefix_start")
            params.append(self.id_prefix)
            end = prefix_end(self.id_prefix)
            if end is not None:
                names.append("prefix_end")
                params.append(end)
        if self.after is not None:
            names.append("after")
            params.extend(self.after)
        return tuple(names), tuple(params)

    def matches(self, run: RunRecord) -> bool:
        """Whether ``run`` (of the app) passes every filter."""
        return (
            (self.status is None or run.status == self.status)
            and (self.workflow is None or run.workflow == self.workflow)
            and (self.queue is None or run.queue == self.queue)
            and (self.since is None or run.created_at >= self.since)
            and (self.until is None or run.created_at < self.until)
            and (not self.id_prefix or run.run_id.startswith(self.id_prefix))
            and (self.after is None or listing_key(run) < self.after)
        )


def merge_counts(rows: Iterable[QueueCounts]) -> list[QueueCounts]:
    """Partial counts of queues (several per queue) summed into one per queue, by name."""
    merged: dict[str, QueueCounts] = {}
    for row in rows:
        seen = merged.get(row.queue)
        if seen is None:
            merged[row.queue] = row
            continue
        oldest = [t for t in (seen.oldest_ready_at, row.oldest_ready_at) if t is not None]
        merged[row.queue] = QueueCounts(
            row.queue,
            seen.ready + row.ready,
            seen.delayed + row.delayed,
            seen.running + row.running,
            min(oldest) if oldest else None,
        )
    return [merged[name] for name in sorted(merged)]


def listing_key(run: RunRecord) -> tuple[float, str]:
    """The key runs are listed by, newest (largest) first."""
    return run.created_at, run.run_id


def decide_requeue(run: RunRecord, now: float, steal_from: str | None) -> tuple[bool, bool]:
    """``(requeue, drop_failed_steps)`` for ``run`` at store time ``now``."""
    if run.status in ("queued", "failed", "cancelled"):
        # A cancelled run is requeued only on request (wf.requeue): as
        # claim_run resumes one, it restarts minus its failed steps.
        return True, run.status != "queued"
    if run.status == "running":
        expired = run.lease_expires_at is not None and run.lease_expires_at <= now
        stolen = steal_from is not None and run.owner == steal_from
        return expired or stolen, False
    return False, False


def requeued_record(run: RunRecord, queue: str, now: float) -> RunRecord:
    """The run as ``requeue_run`` stores it (see the Store contract)."""
    failed = run.status in ("failed", "cancelled")
    return dataclasses.replace(
        run,
        status="queued",
        queue=run.queue if run.queue is not None else queue,
        not_before=None,
        owner=None,
        lease_expires_at=None,
        error=None if failed else run.error,
        cancel_requested=False if failed else run.cancel_requested,
        updated_at=now,
    )
