"""The app both processes import: a queue, a task and a workflow.

Run a worker:   python -m durable worker shop:wf --queue orders
Start orders:   python starter.py
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime

from durable import Workflow

wf = Workflow("shop", db=os.environ.get("SHOP_DB", "shop.db"))

# At most 10 orders execute at once across all workers, 2 per worker
# process, and at most 100 start in any minute.
orders = wf.queue("orders", concurrency=10, worker_concurrency=2, rate_limit=(100, 60.0))


@wf.task(retries=3)
async def charge(order_id: str, cents: int) -> str:
    await asyncio.sleep(0.1)  # the payment provider's latency
    return f"charge-{order_id}"


@wf.task
async def ship(order_id: str) -> str:
    await asyncio.sleep(0.1)
    return f"parcel-{order_id}"


@wf.workflow(id="order-{order_id}", queue="orders")
async def process_order(order_id: str, cents: int) -> dict[str, str]:
    payment = await charge(order_id, cents)
    parcel = await ship(order_id)
    return {"payment": payment, "parcel": parcel}


# Every night at 02:00 Brussels time, one run however many workers serve.
@wf.schedule("0 2 * * *", timezone="Europe/Brussels", queue="orders")
@wf.workflow
async def nightly_report(scheduled_at: datetime) -> str:
    return f"report for {scheduled_at.date()}"
