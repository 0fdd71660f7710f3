"""An execution counter kept outside the store, so counts never depend on the code under test."""

from __future__ import annotations

from collections import Counter


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
