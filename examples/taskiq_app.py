"""Dispatching durable runs through a broker you already run: taskiq on RabbitMQ.

    pip install "python-durable" taskiq taskiq-aio-pika
    taskiq worker taskiq_app:broker            # from this folder: the broker's workers
    python taskiq_app.py 2026-12-01            # sends one report job

The broker delivers the job; the durable workflow makes it resumable. taskiq
acknowledges a message only once its task returned (its default), so when a
worker process dies mid-job RabbitMQ hands the message to another worker. That
worker calls the same workflow with the same run id: the completed steps are
replayed from the store and only the unfinished one runs again.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from taskiq import TaskiqEvents, TaskiqState
from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

from durable import Workflow

QUEUE = os.environ.get("REPORTS_QUEUE", "durable-reports")
broker = AioPikaBroker(
    os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    exchange=Exchange(name=QUEUE),
    task_queues=[Queue(name=QUEUE)],
)
wf = Workflow("reports", db=os.environ.get("REPORTS_DB", "reports.db"))

# Each step notes what it did here, with the pid of the process that did it.
LEDGER = Path(os.environ.get("REPORTS_LEDGER", "reports.log"))
RENDER_SECONDS = float(os.environ.get("REPORTS_RENDER_SECONDS", "0.2"))


def _note(line: str) -> None:
    with LEDGER.open("a") as ledger:
        ledger.write(f"{line} pid={os.getpid()}\n")


@wf.task
async def extract(day: str) -> list[int]:
    await asyncio.to_thread(_note, f"extract {day}")
    return [3, 1, 4, 1, 5]


@wf.task(retries=2)
async def render(day: str, rows: list[int]) -> str:
    await asyncio.to_thread(_note, f"render {day}")
    await asyncio.sleep(RENDER_SECONDS)  # the slow part
    return f"report-{day}.pdf ({sum(rows)} units)"


@wf.task
async def publish(day: str, document: str) -> str:
    await asyncio.to_thread(_note, f"publish {day}")
    return f"published {document}"


@wf.workflow(id="report-{day}")
async def daily_report(day: str) -> str:
    rows = await extract(day)
    document = await render(day, rows)
    return await publish(day, document)


@broker.task(task_name="reports.build_report")
async def build_report(day: str) -> str:
    """The broker's task: one durable run per day, whoever delivers it and how often."""
    return await daily_report(day=day)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def _close_store(_: TaskiqState) -> None:
    await wf.close()


async def send(day: str) -> None:
    await broker.startup()
    try:
        await build_report.kiq(day)
    finally:
        await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(send(sys.argv[1] if len(sys.argv) > 1 else "2026-12-01"))
