"""Persistence backends. ``PostgresStore`` and ``RedisStore`` load their driver on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable.stores.base import (
    Claim as Claim,
)
from durable.stores.base import (
    LeaseState as LeaseState,
)
from durable.stores.base import (
    NewRun as NewRun,
)
from durable.stores.base import (
    RunRecord as RunRecord,
)
from durable.stores.base import (
    SavedStep as SavedStep,
)
from durable.stores.base import (
    StepRecord as StepRecord,
)
from durable.stores.base import (
    Store as Store,
)
from durable.stores.sqlite import SQLiteStore as SQLiteStore

if TYPE_CHECKING:
    from durable.stores.memory import InMemoryStore as InMemoryStore
    from durable.stores.postgres import PostgresStore as PostgresStore
    from durable.stores.redis import RedisStore as RedisStore

__all__ = [
    "Claim",
    "InMemoryStore",
    "LeaseState",
    "NewRun",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "SavedStep",
    "StepRecord",
    "RunRecord",
    "Store",
]


def __getattr__(name: str) -> Any:
    # The drivers are optional extras: import them only when asked for; the
    # in-memory store is for tests.
    if name == "InMemoryStore":
        from durable.stores.memory import InMemoryStore

        return InMemoryStore
    if name == "PostgresStore":
        from durable.stores.postgres import PostgresStore

        return PostgresStore
    if name == "RedisStore":
        from durable.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
