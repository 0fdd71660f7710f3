"""What the pages read and the actions do, over the public ``Workflow`` API.

The listing options (queue, time range, id prefix, cursor) and the queue
statistics are used when the installed ``Workflow`` offers them; otherwise the
runs page filters a bounded window of the newest runs itself and pages by
widening it, and the queues page counts the queued and running runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from durable.stores.base import RUN_STATUSES, RunStatus

if TYPE_CHECKING:
    from durable._inspect import RunInfo
    from durable._workflow import Workflow

PAGE_SIZE = 50
# The widest window the fallback filters in memory, and the most runs a
# queues page counts without the store's own statistics.
MAX_WINDOW = 2000


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The runs page's query: every field optional."""

    status: RunStatus | None = None
    workflow: str | None = None
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    id_prefix: str | None = None
    cursor: str | None = None
    limit: int = PAGE_SIZE


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs and how to fetch the next one (None: this is the last)."""

    runs: list[RunInfo]
    next_cursor: str | None = None
    next_limit: int | None = None


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue as the queues page shows it."""

    name: str
    queued: int
    running: int
    oldest_waiting: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A process executing runs, named by the owner id it claims them with."""

    owner: str
    running: int
    run_ids: list[str] = field(default_factory=list)


class Source:
    """The app the UI shows, and which optional listing features it offers."""

    def __init__(self, wf: Workflow) -> None:
        self.wf = wf
        listing = inspect.signature(wf.list_runs).parameters
        self.listing_options = frozenset(
            option
            for option in ("queue", "since", "until", "id_prefix", "cursor")
            if option in listing
        )
        self.can_requeue = callable(getattr(wf, "requeue", None))
        self.can_delete = callable(getattr(wf, "delete_run", None))
        self.has_queue_stats = callable(getattr(wf, "queue_stats", None))

    @property
    def statuses(self) -> tuple[RunStatus, ...]:
        """Every run status, for the filter."""
        return RUN_STATUSES

    async def runs(self, query: RunFilter) -> RunPage:
        """The runs matching ``query``, newest first."""
        native = {
            name: getattr(query, name)
            for name in self.listing_options
            if getattr(query, name) is not None
        }
        if "cursor" in self.listing_options:
            runs = await self.wf.list_runs(
                status=query.status, workflow=query.workflow, limit=query.limit + 1, **native
            )
            runs = self._filter_locally(runs, query)
            more = len(runs) > query.limit
            runs = runs[: query.limit]
            cursor = getattr(runs[-1], "cursor", None) if more and runs else None
            return RunPage(runs, next_cursor=cursor)
        # No cursor: read a window of the newest runs, filter it here, and
        # page by widening the window.
        window = MAX_WINDOW if self._needs_local_filter(query) else query.limit + 1
        runs = await self.wf.list_runs(
            status=query.status, workflow=query.workflow, limit=window, **native
        )
        runs = self._filter_locally(runs, query)
        more = len(runs) > query.limit
        next_limit = query.limit + PAGE_SIZE if more and query.limit < MAX_WINDOW else None
        return RunPage(runs[: query.limit], next_limit=next_limit)

    def _needs_local_filter(self, query: RunFilter) -> bool:
        return any(
            getattr(query, name) is not None and name not in self.listing_options
            for name in ("since", "until", "id_prefix")
        )

    def _filter_locally(self, runs: Sequence[RunInfo], query: RunFilter) -> list[RunInfo]:
        kept = list(runs)
        if query.id_prefix is not None and "id_prefix" not in self.listing_options:
            kept = [run for run in kept if run.run_id.startswith(query.id_prefix)]
        if query.since is not None and "since" not in self.listing_options:
            kept = [run for run in kept if run.created_at >= query.since]
        if query.until is not None and "until" not in self.listing_options:
            kept = [run for run in kept if run.created_at < query.until]
        return kept

    async def run(self, run_id: str) -> RunInfo:
        """The run with its steps; RunNotFoundError when there is none."""
        return await self.wf.get_run(run_id)

    async def children(self, run_id: str) -> list[RunInfo]:
        """The runs started by ``run_id`` as child workflows (among the newest runs)."""
        runs = await self.wf.list_runs(limit=MAX_WINDOW)
        return [run for run in runs if run.parent_run_id == run_id]

    async def queues(self) -> list[QueueRow]:
        """Depth, running runs and the oldest waiting run of each queue."""
        if self.has_queue_stats:
            stats = await self.wf.queue_stats()  # type: ignore[attr-defined]
            return [_queue_row(item) for item in _items(stats)]
        store, app = self.wf.store, self.wf.name
        await self.wf.list_runs(limit=1)  # opens the store
        rows: dict[str, dict[str, Any]] = {}
        for status in ("queued", "running"):
            for record in await store.list_runs(app, status=status, limit=MAX_WINDOW):
                if record.queue is None:
                    continue
                row = rows.setdefault(record.queue, {"queued": 0, "running": 0, "oldest": None})
                row[status] += 1
                if status == "queued" and (
                    row["oldest"] is None or record.created_at < row["oldest"]
                ):
                    row["oldest"] = record.created_at
        return [
            QueueRow(
                name,
                row["queued"],
                row["running"],
                None
                if row["oldest"] is None
                else datetime.fromtimestamp(row["oldest"]).astimezone(),
            )
            for name, row in sorted(rows.items())
        ]

    async def workers(self) -> list[WorkerRow]:
        """The processes that own running runs now."""
        owners: dict[str, list[str]] = {}
        for run in await self.wf.list_runs(status="running", limit=MAX_WINDOW):
            if run.owner is not None:
                owners.setdefault(run.owner, []).append(run.run_id)
        return [WorkerRow(owner, len(ids), ids) for owner, ids in sorted(owners.items())]


def _items(stats: Any) -> list[Any]:
    if isinstance(stats, dict):
        return list(stats.values())
    return list(stats)


def _queue_row(item: Any) -> QueueRow:
    """A queue statistics record, whichever field names it uses."""

    def pick(*names: str) -> Any:
        for name in names:
            if isinstance(item, dict) and name in item:
                return item[name]
            if hasattr(item, name):
                return getattr(item, name)
        return None

    oldest = pick("oldest_waiting", "oldest_queued_at", "oldest")
    if isinstance(oldest, int | float):
        oldest = datetime.fromtimestamp(oldest).astimezone()
    return QueueRow(
        name=str(pick("name", "queue")),
        queued=int(pick("queued", "depth") or 0),
        running=int(pick("running") or 0),
        oldest_waiting=oldest if isinstance(oldest, datetime) else None,
    )
