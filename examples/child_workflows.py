"""Child workflows: an order fans out into one shipment workflow per item.

    python examples/child_workflows.py

Each call of ``ship_item`` inside ``fulfil_order`` is a child run with its own
id (``ship-{order_id}-{sku}``), recorded as a step of the parent. The first
attempt fails after the shipments completed (the invoice service is down);
calling the order again reuses the children's outputs without shipping twice.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import Counter

from durable import Workflow

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "orders.db")

wf = Workflow("shop", db=DB_PATH)
executions: Counter[str] = Counter()
invoice_service_up = False


@wf.task
async def book_courier(sku: str) -> str:
    executions[f"book_courier {sku}"] += 1
    await asyncio.sleep(0.05)  # stands in for a courier API call
    return f"TRACK-{sku.upper()}"


@wf.workflow(id="ship-{order_id}-{sku}")
async def ship_item(order_id: str, sku: str) -> dict[str, str]:
    tracking = await book_courier(sku)
    return {"sku": sku, "tracking": tracking}


@wf.task(retries=0)  # fail at once: this example is about calling the order again
async def send_invoice(order_id: str, count: int) -> str:
    executions["send_invoice"] += 1
    if not invoice_service_up:
        raise ConnectionError("invoice service unavailable")
    return f"invoice for {order_id}: {count} shipments"


@wf.workflow(id="order-{order_id}")
async def fulfil_order(order_id: str, skus: list[str]) -> list[str]:
    shipments = await asyncio.gather(*(ship_item(order_id, sku) for sku in skus))
    invoice = await send_invoice(order_id, len(shipments))
    return [s["tracking"] for s in shipments] + [invoice]


async def main() -> None:
    global invoice_service_up
    print(f"database: {DB_PATH}")
    try:
        await fulfil_order("A7", ["lamp", "desk", "chair"])
    except ConnectionError as exc:
        print(f"first attempt failed after shipping: {exc}")
    print("children:", [(r.run_id, r.status) for r in await wf.list_runs(workflow="ship_item")])

    invoice_service_up = True
    print("result:", await fulfil_order("A7", ["lamp", "desk", "chair"]))
    print("executions:", dict(sorted(executions.items())))
    parent = await wf.get_run("order-A7")
    print("parent steps:", [(s.step_id, s.status) for s in parent.steps])
    await wf.close()


if __name__ == "__main__":
    asyncio.run(main())
