"""A process that starts a run, commits its first step, then hangs until killed.

    python _requeue_app.py DB JOURNAL

Prints ``started`` once the first step is committed.
"""

from __future__ import annotations

import asyncio
import os
import sys

from durable import Workflow

wf = Workflow("requeue", db=sys.argv[1], lease_ttl=60.0)


def journal(line: str) -> None:
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@wf.task
async def first() -> str:
    journal(f"first {os.getpid()}")
    return "one"


@wf.workflow(id="hang-{n}")
async def hang(n: int) -> str:
    await first()
    print("started", flush=True)
    await asyncio.sleep(3600)
    return "never"


async def main() -> None:
    async with wf:
        await hang(1)


if __name__ == "__main__":
    asyncio.run(main())
