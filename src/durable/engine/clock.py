"""Switches that let tests skip retry waits and durable sleeps, recording them instead."""

from __future__ import annotations

import asyncio

# When a list, waits are appended to it and skipped (see durable.testing.no_backoff).
recorded_waits: list[float] | None = None

# When a list, durable sleeps append their remaining seconds and end at once
# (see durable.testing.skip_sleeps).
skipped_sleeps: list[float] | None = None


async def backoff_sleep(seconds: float) -> None:
    if recorded_waits is not None:
        recorded_waits.append(seconds)
        return
    await asyncio.sleep(seconds)
