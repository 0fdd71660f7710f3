"""Type-checked by mypy, never run: handles, queues, workers and schedules keep their types."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, assert_type

from durable import Queue, RunHandle, Schedule, Workflow

wf = Workflow("typing-worker")
orders = wf.queue("orders", concurrency=10, worker_concurrency=2, rate_limit=(100, 60.0))
assert_type(orders, Queue)


@wf.workflow(id="order-{order_id}", queue="orders")
async def process_order(order_id: str) -> int:
    return len(order_id)


@wf.schedule("*/5 * * * *", timezone="UTC", catchup="all")
@wf.workflow
async def report(scheduled_at: datetime) -> str:
    return scheduled_at.isoformat()


async def use() -> None:
    started = await process_order.start(order_id="42")
    assert_type(started, RunHandle[int])
    assert_type(await started.result(timeout=30), int)
    assert_type(started.run_id, str)
    await process_order.start(order_number="42")  # type: ignore[call-arg]
    queued = await process_order.enqueue(order_id="43", priority=1, delay=timedelta(minutes=5))
    assert_type(queued, RunHandle[int])
    assert_type(wf.handle("order-43"), RunHandle[Any])
    assert_type(wf.schedules(), list[Schedule])
    await wf.serve(queues=["orders"], concurrency=16)
    wf.schedule("* * * * *", catchup="sometimes")  # type: ignore[arg-type]
