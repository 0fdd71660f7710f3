"""One process of the complete() race: waits for the start file, delivers, prints the answer.

Usage: python -m tests.compat._complete_racer '<json spec>'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from durable import Workflow
from durable.stores.base import Store


def build_store(spec: dict[str, Any]) -> Store:
    kind = spec["kind"]
    if kind == "sqlite":
        from durable.stores.sqlite import SQLiteStore

        return SQLiteStore(spec["path"])
    if kind == "postgres":
        from durable.stores.postgres import PostgresStore

        return PostgresStore(spec["dsn"], schema=spec["schema"])
    from durable.stores.redis import RedisStore

    return RedisStore(spec["url"], prefix=spec["prefix"])


def barrier(spec: dict[str, Any]) -> None:
    """Say this process is ready, then block until the test creates the start file."""
    start = Path(spec["start"])
    Path(spec["ready"]).touch()
    while not start.exists():
        time.sleep(0.001)  # a tight wait keeps the racers' starts close together


async def race(spec: dict[str, Any]) -> bool:
    async with Workflow(spec["app"], db=build_store(spec)) as wf:
        await wf.store.open()  # connected before the start, so all deliver together
        barrier(spec)
        return await wf.complete(spec["run_id"], "go", {"sender": spec["sender"]})


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(race(spec))))
