"""Operating runs: list them page by page, look at queues, requeue a failed run.

    python examples/operate_runs.py

Twelve invoices are enqueued; a worker runs them, and one fails because a
rate service is down. The operator lists the runs in pages of five, finds
the failed one by status and by id prefix, checks the queue, and requeues it
once the service is back: the worker reruns only its failed step.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from datetime import timedelta

from durable import Workflow

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "invoices.db")

wf = Workflow("billing", db=DB_PATH)
invoices = wf.queue("invoices")
rates_up = {"ok": False}


@wf.task
async def total(number: int) -> int:
    print(f"  task: totalling invoice {number}", flush=True)
    return number * 100


@wf.task(retries=0)  # fail at once: the example retries the run from the command line
async def convert(cents: int, number: int) -> str:
    if number == 7 and not rates_up["ok"]:
        raise RuntimeError("rate service unavailable")
    print(f"  task: converting invoice {number}", flush=True)
    return f"EUR {cents / 100:.2f}"


@wf.workflow(id="invoice-{number:03d}", queue="invoices")
async def invoice(number: int) -> str:
    return await convert(await total(number), number)


async def main() -> None:
    handles = [await invoice.enqueue(n) for n in range(1, 13)]
    worker = asyncio.create_task(wf.serve(queues=["invoices"], handle_signals=False))
    for handle in handles:
        with contextlib.suppress(RuntimeError):
            await handle.result(timeout=30)

    cursor = None
    while True:
        page = await wf.list_runs(since=timedelta(hours=1), limit=5, cursor=cursor)
        if not page:
            break
        print("page:", " ".join(f"{r.run_id}={r.status}" for r in page))
        cursor = page[-1].cursor
    failed = await wf.list_runs(status="failed")
    print("failed:", [r.run_id for r in failed], failed[0].error)
    print("prefix invoice-00:", len(await wf.list_runs(id_prefix="invoice-00")))
    for q in await wf.queue_stats():
        print(f"queue {q.queue}: queued={q.queued} running={q.running}")

    rates_up["ok"] = True
    handle = await wf.requeue("invoice-007")
    print("requeued invoice-007:", await handle.result(timeout=30))
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    await wf.close()


if __name__ == "__main__":
    asyncio.run(main())
