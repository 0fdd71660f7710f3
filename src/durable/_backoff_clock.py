"""Where retry waits happen, so tests can record them instead of sleeping."""

from __future__ import annotations

import asyncio

# When a list, waits are appended to it and skipped (see durable.testing.no_backoff).
recorded_waits: list[float] | None = None


async def backoff_sleep(seconds: float) -> None:
    if recorded_waits is not None:
        recorded_waits.append(seconds)
        return
    await asyncio.sleep(seconds)
