"""Fixtures for the durable primitives: apps on every store kind that can run here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests import _services

from durable import Workflow
from durable.stores.base import Store
from durable.stores.memory import InMemoryStore
from durable.stores.sqlite import SQLiteStore

STORE_KINDS = (
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
)


async def open_store(kind: str, tmp_path: Path) -> tuple[Store, Callable[[], Awaitable[None]]]:
    """A fresh store of ``kind`` and the coroutine function that removes its data."""

    async def nothing() -> None:
        return None

    if kind == "memory":
        return InMemoryStore(), nothing
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "durable.db"), nothing
    if kind == "postgres":
        dsn = await _services.postgres_dsn()
        module = _services.import_driver("durable.stores.postgres")
        schema = _services.unique_name("prim")

        async def drop_schema() -> None:
            await _services.drop_postgres_schema(dsn, schema)

        return module.PostgresStore(dsn=dsn, schema=schema), drop_schema
    if kind == "redis":
        url = await _services.redis_url()
        module = _services.import_driver("durable.stores.redis")
        prefix = _services.unique_name("prim")

        async def delete_keys() -> None:
            await _services.delete_redis_prefix(url, prefix)

        return module.RedisStore(url=url, prefix=prefix), delete_keys
    raise AssertionError(f"unknown store kind {kind!r}")


@pytest.fixture(params=STORE_KINDS)
async def make_app(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Workflow]]:
    """A factory of apps sharing one store of each kind; the store is closed afterwards."""
    store, cleanup = await open_store(request.param, tmp_path)
    apps: list[Workflow] = []

    def make(name: str = "prim-app", **options: Any) -> Workflow:
        app = Workflow(name, db=store, **options)
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            await app.close()
        await store.close()
        await cleanup()


@pytest.fixture
def wf(make_app: Callable[..., Workflow]) -> Workflow:
    """An app with a short lease, so heartbeats (and remote cancels) arrive quickly."""
    return make_app(lease_ttl=1.5, heartbeat=0.05)
