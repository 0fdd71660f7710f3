"""The app the parked-wait process tests run: ``durable worker _parking_app:wf``.

Every task execution is appended to an fsync'd journal outside the store, so
the tests can count what really ran, and in which process.
"""

from __future__ import annotations

import asyncio
import os
import sys

from durable import Workflow

NAP = float(os.environ.get("PARK_NAP", "2.0"))

wf = Workflow("parking", db=os.environ["PARK_DB"], lease_ttl=3.0, park_after=0.3)
wf.queue("naps", concurrency=2)


def journal(line: str) -> None:
    fd = os.open(os.environ["PARK_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@wf.task
async def mark(tag: str) -> str:
    journal(f"{tag} {os.getpid()}")
    return tag


@wf.workflow(id="nap-{n}", queue="naps")
async def nap(n: int) -> int:
    await mark(f"before-{n}")
    await wf.sleep(NAP)
    await mark(f"after-{n}")
    return n


@wf.workflow(id="approval-{n}", queue="naps")
async def approval(n: int) -> str:
    await mark(f"asked-{n}")
    answer = await wf.signal("answer")
    await mark(f"answered-{n}")
    return str(answer)


async def _main(command: str, *args: str) -> None:
    async with wf:
        if command == "naps":
            for n in range(int(args[0])):
                await nap.enqueue(n)
        elif command == "approval":
            await approval.enqueue(int(args[0]))
        elif command == "signal":
            await wf.send_signal(args[0], "answer", args[1])
        else:
            raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    asyncio.run(_main(*sys.argv[1:]))
