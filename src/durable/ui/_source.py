"""What the pages read, over the public ``Workflow`` API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from durable.stores.base import RUN_STATUSES, RunStatus

if TYPE_CHECKING:
    from durable._inspect import RunInfo
    from durable._listing import QueueStats
    from durable._workflow import Workflow

PAGE_SIZE = 50
# The most runs a page looks through for a run's children and the workers.
SCAN_LIMIT = 2000


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
    """One page of runs and the cursor of the next one (None: this is the last)."""

    runs: list[RunInfo]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A process executing runs, named by the owner id it claims them with."""

    owner: str
    running: int
    run_ids: list[str] = field(default_factory=list)


class Source:
    """The app the UI shows."""

    statuses: tuple[RunStatus, ...] = RUN_STATUSES

    def __init__(self, wf: Workflow) -> None:
        self.wf = wf

    async def runs(self, query: RunFilter) -> RunPage:
        """The runs matching ``query``, newest first."""
        # One run more than the page tells whether another page follows.
        runs = await self.wf.list_runs(
            status=query.status,
            workflow=query.workflow,
            queue=query.queue,
            since=query.since,
            until=query.until,
            id_prefix=query.id_prefix,
            cursor=query.cursor,
            limit=query.limit + 1,
        )
        if len(runs) > query.limit:
            page = runs[: query.limit]
            return RunPage(page, next_cursor=page[-1].cursor)
        return RunPage(runs)

    async def run(self, run_id: str) -> RunInfo:
        """The run with its steps; RunNotFoundError when there is none."""
        return await self.wf.get_run(run_id)

    async def children(self, run: RunInfo) -> list[RunInfo]:
        """The runs started by ``run`` as child workflows (none is older than it)."""
        runs = await self.wf.list_runs(since=run.created_at, limit=SCAN_LIMIT)
        return [child for child in runs if child.parent_run_id == run.run_id]

    async def queues(self) -> list[QueueStats]:
        """Depth, running runs and the oldest waiting run of each queue."""
        return await self.wf.queue_stats()

    async def workers(self) -> list[WorkerRow]:
        """The processes that own running runs now."""
        owners: dict[str, list[str]] = {}
        for run in await self.wf.list_runs(status="running", limit=SCAN_LIMIT):
            if run.owner is not None:
                owners.setdefault(run.owner, []).append(run.run_id)
        return [WorkerRow(owner, len(ids), ids) for owner, ids in sorted(owners.items())]
