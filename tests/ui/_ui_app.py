"""The app the UI tests show, also run by worker processes: ``durable worker _ui_app:wf``."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable import Workflow


@dataclass
class Demo:
    """The app and the workflows the tests start."""

    wf: Workflow
    greet: Any
    order: Any
    bundle: Any
    dispatch: Any


def build(db: Any) -> Demo:
    """The demo app on ``db`` (a SQLite file, a URL or a Store)."""
    # Failing tasks fail their run at once: the UI shows failed runs.
    wf = Workflow("ui-demo", db=db, lease_ttl=3.0, default_retries=0)

    @wf.task
    async def say(name: str) -> str:
        return f"hello {name}"

    @wf.task
    async def charge(amount: int) -> dict[str, int]:
        if amount < 0:
            raise ValueError(f"cannot charge a negative amount: {amount}")
        return {"charged": amount}

    @wf.workflow(id="greet-{name}")
    async def greet(name: str) -> str:
        return await say(name)

    @wf.workflow(id="order-{order}", queue="orders")
    async def order(order: str, amount: int) -> dict[str, object]:
        receipt = await charge(amount)
        approver = await wf.signal("approve")
        return {"order": order, "receipt": receipt, "approved_by": approver}

    @wf.workflow(id="bundle-{name}")
    async def bundle(name: str) -> str:
        return await greet(name=f"{name}-gift")

    @wf.task
    async def ship(order: str, ready_flag: str) -> str:
        if not await asyncio.to_thread(os.path.exists, ready_flag):
            raise RuntimeError(f"order {order}: the warehouse is not ready")
        return f"shipped {order}"

    @wf.workflow(id="dispatch-{order}", queue="orders")
    async def dispatch(order: str, ready_flag: str) -> str:
        return await ship(order, ready_flag)

    @wf.schedule("0 3 * * *", catchup="none")
    @wf.workflow
    async def nightly_report(scheduled_at: datetime) -> str:
        return scheduled_at.isoformat()

    return Demo(wf, greet, order, bundle, dispatch)


wf = build(os.environ["UI_DB"]).wf if "UI_DB" in os.environ else None
