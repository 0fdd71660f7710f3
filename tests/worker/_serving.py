"""A worker in the background of a test: ``async with serving(wf): ...``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from durable import Workflow


@contextlib.asynccontextmanager
async def serving(wf: Workflow, **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    """A worker of ``wf`` in the background for the block; cancelled after it."""
    options.setdefault("poll_interval", 0.05)
    options.setdefault("handle_signals", False)
    worker = asyncio.create_task(wf.serve(**options))
    try:
        yield worker
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
