"""``durable queues``: depth, running runs and oldest waiting run per queue."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from durable._listing import QueueStats
from durable._workflow import Workflow
from durable.cli import _render
from durable.cli._context import Target, run

__all__ = ["queues"]


def _waiting_for(oldest: datetime | None, now: datetime) -> str:
    if oldest is None:
        return ""
    seconds = max(0.0, (now - oldest).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_obj
def queues(target: Target, as_json: bool) -> None:
    """Each queue: runs waiting (ready now, delayed), running, and the oldest waiting."""

    async def action(wf: Workflow) -> list[QueueStats]:
        return await wf.queue_stats()

    stats = run(target, action)
    if as_json:
        _render.print_json(stats)
        return
    now = datetime.now(UTC)
    table = Table(title=f"{len(stats)} queue(s)", title_justify="left")
    for column in ("queue", "ready", "delayed", "running", "oldest ready", "waiting for"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for stat in stats:
        oldest = stat.oldest_queued_at
        table.add_row(
            stat.queue,
            str(stat.ready),
            str(stat.delayed),
            str(stat.running),
            "" if oldest is None else oldest.strftime("%Y-%m-%d %H:%M:%S"),
            _waiting_for(oldest, now),
        )
    _render.console().print(table)
