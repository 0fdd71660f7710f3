"""The ``store`` fixture: every store kind, opened, isolated per test, closed after."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tests import _services

from durable.stores.base import Store
from durable.stores.memory import InMemoryStore
from durable.stores.sqlite import SQLiteStore

STORE_KINDS = (
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
)


def _store_class(module: str, name: str) -> type[Store]:
    try:
        cls: type[Store] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        _services.unavailable(f"{module}.{name} cannot be imported: {exc}")
    return cls


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened store of each kind, empty and private to the test."""
    kind: str = request.param
    cleanup: Callable[[], Awaitable[None]] | None = None
    instance: Store
    if kind == "memory":
        instance = InMemoryStore()
    elif kind == "sqlite":
        instance = SQLiteStore(tmp_path / "durable.db")
    elif kind == "postgres":
        dsn = await _services.postgres_dsn()
        schema = _services.unique_name("pg")
        instance = _store_class("durable.stores.postgres", "PostgresStore")(  # type: ignore[call-arg]
            dsn=dsn, schema=schema
        )

        async def cleanup() -> None:
            await _services.drop_postgres_schema(dsn, schema)

    elif kind == "redis":
        url = await _services.redis_url()
        prefix = _services.unique_name("redis")
        instance = _store_class("durable.stores.redis", "RedisStore")(  # type: ignore[call-arg]
            url=url, prefix=prefix
        )

        async def cleanup() -> None:
            await _services.delete_redis_prefix(url, prefix)

    else:
        raise AssertionError(f"unknown store kind {kind!r}")
    try:
        await instance.open()
        yield instance
    finally:
        await instance.close()
        if cleanup is not None:
            await cleanup()
