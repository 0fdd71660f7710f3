"""Type-checked by mypy, never run: the durable primitives and inspection API keep their types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

from durable import ErrorInfo, RunInfo, StepInfo, Workflow

wf = Workflow("typing-primitives")


@wf.workflow(id="flow-{n}")
async def flow(n: int) -> str:
    assert_type(await wf.sleep(1.5), None)
    assert_type(await wf.sleep(timedelta(minutes=5)), None)
    assert_type(await wf.sleep_until(datetime.now(UTC)), None)
    assert_type(await wf.signal("approve", timeout=30), Any)
    await wf.sleep("soon")  # type: ignore[arg-type]
    return "done"


async def operate() -> None:
    assert_type(await wf.send_signal("flow-1", "approve", {"ok": True}), None)
    assert_type(await wf.complete("flow-1", "approve", 0), bool)
    assert_type(await wf.cancel("flow-1"), None)
    assert_type(await wf.resume("flow-1"), Any)
    info = await wf.get_run("flow-1")
    assert_type(info, RunInfo)
    assert_type(info.steps, tuple[StepInfo, ...])
    assert_type(info.error, ErrorInfo | None)
    assert_type(info.created_at, datetime)
    assert_type(info.duration, float | None)
    assert_type(await wf.list_runs(status="failed", workflow="flow", limit=5), list[RunInfo])
    await wf.list_runs(status="done")  # type: ignore[arg-type]
