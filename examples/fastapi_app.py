"""A FastAPI service whose orders survive crashes and restarts.

    pip install "python-durable" fastapi uvicorn
    uvicorn fastapi_app:app            # from this folder

    curl -X POST localhost:8000/orders -H 'Idempotency-Key: order-1' \\
         -H 'Content-Type: application/json' -d '{"sku": "mug", "quantity": 2, "cents": 1800}'
    curl localhost:8000/orders/order-1                    # status, steps, output
    curl -N localhost:8000/orders/order-1/events          # status as server-sent events
    curl -X POST localhost:8000/webhooks/shipped/order-1 \\
         -H 'Content-Type: application/json' -d '{"tracking": "PKG-7"}'

A POST records the run and answers 202 at once; a worker started by the
app's lifespan executes it. The run reserves stock, charges the card, then
waits (durably) for the carrier's webhook. Kill the server at any point and
start it again: the worker adopts the orphaned run and carries on from its
last completed step, so nobody is charged twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from durable import Workflow
from durable.errors import RunConflictError, RunIdError, RunNotFoundError

wf = Workflow("orders", db=os.environ.get("ORDERS_DB", "orders.db"))

# The card processor of this example is a file, so you can see each charge happen once.
PAYMENTS = Path(os.environ.get("ORDERS_PAYMENTS", "payments.log"))


class Order(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    cents: int = Field(gt=0)


class Shipment(BaseModel):
    tracking: str = Field(min_length=1)


@wf.task(retries=3)
async def reserve_stock(order_id: str, sku: str, quantity: int) -> str:
    await asyncio.sleep(0.05)  # the warehouse API
    return f"hold-{order_id}-{sku}x{quantity}"


@wf.task(retries=3)
async def charge(order_id: str, cents: int) -> str:
    await asyncio.to_thread(_record_payment, f"{order_id} {cents}\n")
    return f"ch-{order_id}"


def _record_payment(line: str) -> None:
    with PAYMENTS.open("a") as ledger:
        ledger.write(line)


@wf.workflow(queue="orders")
async def fulfil_order(order_id: str, order: Order) -> dict[str, str]:
    hold = await reserve_stock(order_id, order.sku, order.quantity)
    payment = await charge(order_id, order.cents)
    shipment = await wf.signal("shipped")  # parked here until the carrier calls back
    return {"hold": hold, "payment": payment, "tracking": shipment["tracking"]}


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with wf:
        # A worker in the server process: it executes queued orders and, at
        # start-up, adopts the runs a crashed server left behind. Bigger
        # deployments run `durable worker fastapi_app:wf` processes instead.
        # At shutdown, orders waiting for the carrier's webhook park at once;
        # one in the middle of a step gets 5 s, then goes back to the store,
        # where the next server (or any worker) resumes it.
        worker = asyncio.create_task(wf.serve(queues=["orders"], handle_signals=False, grace=5.0))
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


app = FastAPI(title="orders", lifespan=lifespan)


@app.post("/orders", status_code=202)
async def create_order(
    order: Order, idempotency_key: str | None = Header(default=None)
) -> dict[str, str]:
    """Record the order's run and return at once; the same key returns the same run."""
    order_id = idempotency_key or f"order-{os.urandom(6).hex()}"
    try:
        handle = await fulfil_order.enqueue(order_id=order_id, order=order, run_id=order_id)
    except RunIdError as error:
        raise HTTPException(422, str(error)) from error
    except RunConflictError as error:
        raise HTTPException(409, f"{order_id} was already used for another order") from error
    return {"run_id": handle.run_id, "status_url": f"/orders/{handle.run_id}"}


@app.get("/orders/{run_id}")
async def order_status(run_id: str) -> dict[str, Any]:
    """The run's status, its completed steps, and its output or error once it ends."""
    try:
        run = await wf.get_run(run_id)
    except RunNotFoundError as error:
        raise HTTPException(404, f"no order {run_id!r}") from error
    return {
        "run_id": run.run_id,
        "status": run.status,
        "steps": [step.step_id for step in run.steps if step.status == "completed"],
        "output": run.output if run.status == "completed" else None,
        "error": run.error.message if run.error else None,
    }


@app.post("/webhooks/shipped/{run_id}", status_code=202)
async def shipped(run_id: str, shipment: Shipment) -> dict[str, str]:
    """The carrier's webhook: delivered to the run, which is waiting for it (or will be)."""
    try:
        await wf.get_run(run_id)
    except RunNotFoundError as error:
        raise HTTPException(404, f"no order {run_id!r}") from error
    await wf.send_signal(run_id, "shipped", shipment.model_dump())
    return {"run_id": run_id}


@app.get("/orders/{run_id}/events")
async def order_events(run_id: str) -> StreamingResponse:
    """Server-sent events: one ``status`` event per change, until the run ends."""
    handle = wf.handle(run_id)
    try:
        first = await handle.status()
    except RunNotFoundError as error:
        raise HTTPException(404, f"no order {run_id!r}") from error

    async def events() -> AsyncIterator[str]:
        status, last = first, None
        while True:
            if status != last:
                yield f"event: status\ndata: {json.dumps({'status': status})}\n\n"
                last = status
            if status in ("completed", "failed", "cancelled"):
                return
            await asyncio.sleep(0.2)
            status = await handle.status()

    return StreamingResponse(events(), media_type="text/event-stream")
