"""The app the CLI tests operate on: a few workflows that end in each status.

Each test builds it over its own store URL; ``--app module:attr`` tests import
a generated module that calls :func:`build` with that URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

from durable import Workflow
from durable.stores import from_url

APP = "shop"
# The payment task fails until a test (or SHOP_CHARGE_OK=1 in a worker process) says otherwise.
FLAKY: dict[str, bool] = {"fail": os.environ.get("SHOP_CHARGE_OK") != "1"}


@dataclass
class Shop:
    """The app and its workflows."""

    wf: Workflow
    total: Any
    checkout: Any
    approval: Any
    batch: Any


def build(db: str) -> Shop:
    """The ``shop`` app over the store at ``db``."""
    # A declined card fails its run at once: the seeded runs include a failed one.
    wf = Workflow(APP, db=from_url(db), default_retries=0)

    @wf.task
    async def add(a: int, b: int) -> int:
        return a + b

    @wf.task
    async def charge(order: str) -> str:
        if FLAKY["fail"]:
            raise ValueError(f"card declined for {order}")
        return f"charged {order}"

    @wf.workflow(id="total-{a}-{b}")
    async def total(a: int, b: int) -> int:
        return await add(a, b)

    @wf.workflow(id="checkout-{order}")
    async def checkout(order: str) -> str:
        await add(1, 2)
        return await charge(order)

    @wf.workflow(id="approval-{order}")
    async def approval(order: str) -> Any:
        return await wf.signal("approve")

    @wf.workflow(id="batch-{size}")
    async def batch(size: int) -> int:
        sums = [await total(i, i) for i in range(size)]
        return sum(sums)

    return Shop(wf, total, checkout, approval, batch)


async def seed(shop: Shop) -> None:
    """One run of each kind: completed, failed, queued, with children, with signals."""
    await shop.total(a=2, b=3)
    FLAKY["fail"] = True
    with contextlib.suppress(ValueError):
        await shop.checkout(order="o-1")
    await shop.batch(size=2)
    await shop.approval.enqueue(order="o-queued")
    await shop.wf.send_signal("approval-o-2", "approve", {"by": "ana"})
    await shop.wf.send_signal("approval-o-2", "approve", {"by": "late"})
    await shop.approval(order="o-2")


def seed_store(db: str) -> None:
    """Fill the store at ``db`` with :func:`seed`'s runs."""

    async def main() -> None:
        shop = build(db)
        async with shop.wf:
            await seed(shop)

    asyncio.run(main())
