"""Type-checked by mypy, never run: listing, queue counts and requeue keep their types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

from durable import QueueStats, RunHandle, RunInfo, Workflow

wf = Workflow("typing-listing")


async def use() -> None:
    page = await wf.list_runs(status="failed", queue="orders", since=timedelta(hours=2))
    assert_type(page, list[RunInfo])
    assert_type(page[-1].cursor, str)
    assert_type(page[-1].queue, str | None)
    await wf.list_runs(until=datetime.now(UTC), id_prefix="order-", cursor=page[-1].cursor)
    await wf.list_runs(status="done")  # type: ignore[arg-type]
    await wf.list_runs(since=3600)  # type: ignore[arg-type]
    stats = await wf.queue_stats()
    assert_type(stats, list[QueueStats])
    assert_type(stats[0].oldest_queued_at, datetime | None)
    assert_type(stats[0].ready + stats[0].delayed == stats[0].queued, bool)
    assert_type(await wf.requeue("order-42"), RunHandle[Any])
