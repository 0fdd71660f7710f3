"""Retention: delete one finished run, then prune the old ones in batches.

    python examples/retention.py

Three orders complete and one fails. A run still waiting for a signal cannot
be deleted (``RunNotFinishedError``); a finished one can. ``wf.prune`` first
counts (``dry_run``), then deletes the failed runs only, then everything
finished, reporting its progress; the waiting run is never touched.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from durable import Workflow
from durable.errors import RunNotFinishedError

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "orders.db")

wf = Workflow("orders", db=DB_PATH)


@wf.task(retries=0)  # a declined card stays declined: fail at once
async def charge(order: int) -> str:
    if order == 4:
        raise ValueError("card declined")
    return f"charged order {order}"


@wf.workflow(id="order-{order}")
async def place(order: int) -> str:
    return await charge(order)


@wf.workflow(id="refund-{order}")
async def refund(order: int) -> str:
    approved_by = await wf.signal("approved")
    return f"refund of {order} approved by {approved_by}"


async def runs() -> list[tuple[str, str]]:
    return sorted((info.run_id, info.status) for info in await wf.list_runs())


async def main() -> None:
    print(f"database: {DB_PATH}")
    for order in (1, 2, 3, 4):
        try:
            await place(order)
        except ValueError as exc:
            print(f"order {order} failed: {exc}")
    waiting = asyncio.ensure_future(refund(9))
    await asyncio.sleep(0.2)  # the refund is now waiting for its signal
    try:
        await wf.delete_run("refund-9")
    except RunNotFinishedError as exc:
        print(f"refused: {exc}")
    await wf.delete_run("order-1")
    print(f"after delete_run: {await runs()}")

    await asyncio.sleep(0.5)  # every finished run is now older than 0.3 s
    print(f"would prune: {await wf.prune(0.3, dry_run=True)}")
    print(f"pruned failed: {await wf.prune(0.3, statuses=['failed'])}")
    total = await wf.prune(0.3, progress=lambda n: print(f"  progress: {n} deleted"))
    print(f"pruned: {total}")
    print(f"left: {await runs()}")

    await wf.send_signal("refund-9", "approved", "lee")
    print(await waiting)
    await wf.close()


if __name__ == "__main__":
    asyncio.run(main())
