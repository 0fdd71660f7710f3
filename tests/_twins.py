"""A second store on the same data as a test's store: what another process would open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from durable.stores.base import Store
from durable.stores.memory import InMemoryStore


@asynccontextmanager
async def twin(store: Store) -> AsyncIterator[Store]:
    """Another store object, with connections of its own, on the data of ``store``.

    The in-memory store cannot be shared between objects: its twin is itself,
    which stands for another app object of the same process. SQLite tells
    nobody (its workers poll): tests of notifications skip it.
    """
    if isinstance(store, InMemoryStore):
        yield store
        return
    other: Store
    kind = type(store).__name__
    if kind == "PostgresStore":
        from durable.stores.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        other = PostgresStore(store.dsn, schema=store.schema)
    elif kind == "RedisStore":
        from durable.stores.redis import RedisStore

        assert isinstance(store, RedisStore)
        other = RedisStore(store.url, prefix=store.prefix)
    else:
        pytest.skip(f"{kind} has no cross-process notifications: its workers poll")
    async with other:
        yield other
