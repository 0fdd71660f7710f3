"""Parked waits: a worker holds nothing in memory for a run that sleeps or waits on a signal.

A worker serves a queue with one slot. Three trials each send a welcome,
sleep, then wait for the user's answer. Each run parks in its sleep (status
``waiting``), so all three sleep at once although only one may execute; they
park again on the signal wait, and wake when the answer arrives.

    python examples/parked_waits.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from durable import RunHandle, Workflow

wf = Workflow("trials", db=os.environ.get("EXAMPLE_DB", "parked_waits.db"), park_after=0.5)
wf.queue("trials", concurrency=1)


asked: set[str] = set()  # users asked to upgrade, as seen by this process


@wf.task
async def send(user: str, text: str) -> None:
    print(f"  task: {text} {user}")
    if text == "asked to upgrade":
        asked.add(user)


@wf.workflow(id="trial-{user}", queue="trials")
async def trial(user: str) -> str:
    await send(user, "welcome")
    await wf.sleep(2)  # longer than park_after: parked, its slot free
    await send(user, "asked to upgrade")
    answer = await wf.signal("answer")  # parked again after 0.5 s of waiting
    await send(user, f"got {answer!r} from")
    return f"{user}: {answer}"


async def all_waiting(handles: list[RunHandle[str]]) -> None:
    while [await h.status() for h in handles] != ["waiting"] * len(handles):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def main() -> None:
    async with wf:
        worker = asyncio.create_task(wf.serve(poll_interval=0.1, handle_signals=False))
        users = ("ann", "bob", "cy")
        handles = [await trial.enqueue(user) for user in users]
        await all_waiting(handles)
        print("all three sleep at once, parked, in a queue with one slot")
        while asked != set(users):  # noqa: ASYNC110 - the worker runs in this process
            await asyncio.sleep(0.05)
        await all_waiting(handles)
        print("all three wait for an answer, parked")
        for handle in handles:
            await wf.send_signal(handle.run_id, "answer", "yes")
        for handle in handles:
            print("result:", await handle.result(timeout=30))
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


if __name__ == "__main__":
    asyncio.run(main())
