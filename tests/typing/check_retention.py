"""Type-checked by mypy, never run: retention keeps its types."""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

from durable import Workflow

wf = Workflow("typing-retention", retention=timedelta(days=30))
Workflow("typing-retention-seconds", retention=86400.0)


async def use() -> None:
    assert_type(await wf.delete_run("order-1"), None)
    assert_type(await wf.prune(timedelta(days=7)), int)
    seen: list[int] = []
    deleted = await wf.prune(3600, statuses=["failed"], dry_run=True, progress=seen.append)
    assert_type(deleted, int)
    await wf.prune(timedelta(days=1), True)  # type: ignore[arg-type]
