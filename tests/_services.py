"""Locating the PostgreSQL and Redis servers the tests may use, and cleaning up after them.

Without a reachable server (or without its driver) a test is skipped, unless
``DURABLE_REQUIRE_SERVICES=1``, in which case it fails: CI sets it so that a
broken service never turns into a green run of skipped tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from durable.stores.base import Store

POSTGRES_DSN_ENV = "DURABLE_TEST_POSTGRES_DSN"
REDIS_URL_ENV = "DURABLE_TEST_REDIS_URL"
REQUIRE_ENV = "DURABLE_REQUIRE_SERVICES"

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_CONNECT_TIMEOUT = 5.0

# Reachability is checked once per server and session: a down server would
# otherwise cost a connect timeout in every test.
_verdicts: dict[str, str | None] = {}


def services_required() -> bool:
    """True when a missing service must fail the tests rather than skip them."""
    return os.environ.get(REQUIRE_ENV) == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def unique_name(kind: str) -> str:
    """A name no other test uses: a schema name, a key prefix, ..."""
    return f"durable_test_{kind}_{uuid.uuid4().hex[:12]}"


def import_driver(module: str) -> Any:
    """Import an optional driver module, or skip/fail saying which one is missing."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        unavailable(f"{module} cannot be imported: {exc}")


async def postgres_dsn() -> str:
    """The test PostgreSQL DSN once the server answered; skips or fails otherwise."""
    dsn = os.environ.get(POSTGRES_DSN_ENV, DEFAULT_POSTGRES_DSN)
    asyncpg = import_driver("asyncpg")
    if dsn not in _verdicts:
        try:
            conn = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            _verdicts[dsn] = f"PostgreSQL unreachable at {dsn} ({POSTGRES_DSN_ENV}): {exc}"
        else:
            await conn.close()
            _verdicts[dsn] = None
    reason = _verdicts[dsn]
    if reason is not None:
        unavailable(reason)
    return dsn


async def redis_url() -> str:
    """The test Redis URL once the server answered; skips or fails otherwise."""
    url = os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL)
    aioredis = import_driver("redis.asyncio")
    if url not in _verdicts:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT)
        try:
            await client.ping()
        except (TimeoutError, OSError, aioredis.RedisError) as exc:
            _verdicts[url] = f"Redis unreachable at {url} ({REDIS_URL_ENV}): {exc}"
        else:
            _verdicts[url] = None
        finally:
            await client.aclose()
    reason = _verdicts[url]
    if reason is not None:
        unavailable(reason)
    return url


async def drop_postgres_schema(dsn: str, schema: str) -> None:
    """Drop a test schema and everything in it."""
    asyncpg = import_driver("asyncpg")
    conn = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
    try:
        quoted = '"' + schema.replace('"', '""') + '"'
        await conn.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    finally:
        await conn.close()


async def delete_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key that starts with ``prefix``."""
    aioredis = import_driver("redis.asyncio")
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    client = aioredis.Redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT)
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


# Every store kind the suites run against; the markers let `-m "not postgres"` deselect.
STORE_KINDS = (
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
)


async def _nothing() -> None:
    return None


async def new_store(kind: str, tmp_path: Path) -> tuple[Store, Callable[[], Awaitable[None]]]:
    """A fresh, unopened store of ``kind`` private to one test, and its cleanup."""
    from durable.stores.memory import InMemoryStore
    from durable.stores.sqlite import SQLiteStore

    if kind == "memory":
        return InMemoryStore(), _nothing
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "durable.db"), _nothing
    if kind == "postgres":
        dsn = await postgres_dsn()
        module = import_driver("durable.stores.postgres")
        schema = unique_name("pg")

        async def drop_schema() -> None:
            await drop_postgres_schema(dsn, schema)

        return module.PostgresStore(dsn=dsn, schema=schema), drop_schema
    if kind == "redis":
        url = await redis_url()
        module = import_driver("durable.stores.redis")
        prefix = unique_name("redis")

        async def delete_keys() -> None:
            await delete_redis_prefix(url, prefix)

        return module.RedisStore(url=url, prefix=prefix), delete_keys
    raise AssertionError(f"unknown store kind {kind!r}")
