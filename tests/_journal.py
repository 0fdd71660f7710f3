"""An execution counter kept outside the store, so counts never depend on the code under test."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest


class Journal:
    """Records each execution of a task body, in order."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def __call__(self, entry: str) -> None:
        self.entries.append(entry)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


async def interrupt(call: asyncio.Future[Any], journal: Journal, entries: int) -> None:
    """Cancel a running workflow call once the journal holds ``entries`` lines.

    Cancellation stops the run without an outcome, as a dying process would:
    the run stays ``running`` and the next call takes it over.
    """
    while len(journal) < entries:  # noqa: ASYNC110 - the journal is a plain list
        await asyncio.sleep(0.005)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
