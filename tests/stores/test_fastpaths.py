"""The fast paths over asyncio, asyncpg and redis internals, and the public fallbacks beside them.

Stores close what they opened on an event loop when that loop shuts down
(public APIs only). Only a loop closed without shutting down needs the fast
paths, to close its sockets at once; without them the connections are kept
referenced, never collected with a warning. These tests make and close their
own loops, so they are plain functions.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests import _services

from durable import _fastpaths
from durable.stores import _loops
from durable.stores.base import NewRun

_ADAPTERS = ("asyncio", "asyncpg", "redis")


def _availability(env: dict[str, str]) -> dict[str, bool]:
    """Each adapter's ``available()``, in a fresh interpreter (the switch is read at import)."""
    code = (
        "import importlib\n"
        f"for name in {_ADAPTERS!r}:\n"
        "    module = importlib.import_module('durable._fastpaths.' + name)\n"
        "    print(name, module.available())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return {name: value == "True" for name, value in map(str.split, done.stdout.splitlines())}


def test_the_switch_turns_every_fast_path_off() -> None:
    """DURABLE_DISABLE_FAST_PATHS=1 makes every adapter take its fallback; unset, none does."""
    _services.import_driver("asyncpg")
    _services.import_driver("redis")
    env = {k: v for k, v in os.environ.items() if k != _fastpaths.ENV_VAR}
    assert _availability({**env, _fastpaths.ENV_VAR: "1"}) == dict.fromkeys(_ADAPTERS, False)
    # The versions installed for the tests are the ones the fast paths were checked against.
    assert _availability(env) == dict.fromkeys(_ADAPTERS, True)


@pytest.mark.parametrize(
    ("adapter", "library", "version"),
    [("asyncpg", "asyncpg", "0.99.0"), ("redis", "redis", "9.0.0"), ("redis", "redis", "7.4.2")],
)
def test_unchecked_library_versions_take_the_fallback(
    adapter: str, library: str, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library version outside the checked range turns its fast path off."""
    module = _services.import_driver(f"durable._fastpaths.{adapter}")
    monkeypatch.setattr(_fastpaths, "_DISABLED", False)
    assert module.available()
    monkeypatch.setattr(_services.import_driver(library), "__version__", version)
    assert not module.available()


def test_unchecked_python_versions_take_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The asyncio fast path, and those built on it, are off outside the checked Python versions."""
    from durable._fastpaths import asyncio as asyncio_fastpaths

    redis_fastpaths = _services.import_driver("durable._fastpaths.redis")
    monkeypatch.setattr(_fastpaths, "_DISABLED", False)
    assert asyncio_fastpaths.available()
    monkeypatch.setattr(asyncio_fastpaths, "_BELOW", (3, 11))
    assert not asyncio_fastpaths.available()
    assert not redis_fastpaths.available()
    assert not asyncio_fastpaths.close_transport_now(None)


def _hook(calls: list[str]) -> _loops.LoopShutdownHook:
    async def on_shutdown() -> None:
        await asyncio.sleep(0)  # the loop still runs
        calls.append("shutdown")

    return _loops.LoopShutdownHook(on_shutdown)


@pytest.mark.usefixtures("no_warnings")
def test_a_shutdown_hook_runs_once_as_its_loop_shuts_down() -> None:
    """An armed hook runs when asyncio.run ends, and is then forgotten."""
    calls: list[str] = []
    hook = _hook(calls)

    async def arm() -> None:
        await hook.arm()
        assert hook in _loops._armed
        assert calls == []

    asyncio.run(arm())
    assert calls == ["shutdown"]
    assert hook not in _loops._armed
    hook.disarm()
    assert calls == ["shutdown"]


@pytest.mark.usefixtures("no_warnings")
def test_a_disarmed_hook_never_runs() -> None:
    """Disarmed on its loop, or after a bare close of it, a hook never runs and leaves nothing."""
    calls: list[str] = []
    on_loop, after_close = _hook(calls), _hook(calls)

    async def arm_both() -> None:
        await on_loop.arm()
        await after_close.arm()
        on_loop.disarm()

    bare = asyncio.new_event_loop()
    try:
        bare.run_until_complete(arm_both())
    finally:
        bare.close()
    assert after_close in _loops._armed
    after_close.disarm()
    assert after_close not in _loops._armed
    assert calls == []


@pytest.fixture(params=[True, False], ids=["fast", "fallback"])
def fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test with the fast paths on, then off."""
    enabled: bool = request.param
    monkeypatch.setattr(_fastpaths, "_DISABLED", not enabled)
    return enabled


@pytest.fixture
def no_warnings() -> Iterator[None]:
    """Fail if anything warns, up to a final garbage collection (a leaked socket, say)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        for _ in range(3):
            gc.collect()
    assert [str(w.message) for w in caught] == []


class _Postgres:
    """A PostgreSQL store whose connections the server can count by application name."""

    def __init__(self) -> None:
        self.dsn = asyncio.run(_services.postgres_dsn())
        self.schema = _services.unique_name("pg")
        self.name = f"durable-fastpaths-{uuid.uuid4().hex[:8]}"
        module = _services.import_driver("durable.stores.postgres")
        self.store = module.PostgresStore(
            self.dsn, schema=self.schema, application_name=self.name, max_size=2
        )

    async def _count(self) -> int:
        conn = await _services.import_driver("asyncpg").connect(self.dsn)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", self.name
            )
            return count
        finally:
            await conn.close()

    def connections(self, expected: int) -> int:
        """The store's connections on the server, once it shows ``expected`` (or after 5 s)."""
        deadline = time.monotonic() + 5
        while (count := asyncio.run(self._count())) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return count

    def drop(self) -> None:
        asyncio.run(_services.drop_postgres_schema(self.dsn, self.schema))


def _claim(store: Any, run_id: str) -> Callable[[], Any]:
    return lambda: store.claim_run(NewRun("app", run_id, "wf", "{}"), owner="o", lease_ttl=30)


@pytest.mark.postgres
@pytest.mark.usefixtures("no_warnings")
def test_postgres_connections_close_when_their_loop_shuts_down(fast: bool) -> None:
    """A store never closed leaves no connection once asyncio.run returns, fast paths or not."""
    pg = _Postgres()
    armed = set(_loops._armed)
    try:
        assert asyncio.run(_claim(pg.store, "r")()).acquired
        assert pg.connections(0) == 0
        assert asyncio.run(pg.store.get_run("app", "r")) is not None
        assert pg.connections(0) == 0
        assert _loops._armed == armed
    finally:
        pg.drop()


def _use_on_a_bare_loop(store: Any, call: Callable[[], Any]) -> None:
    """Run ``call()`` on a loop then closed without shutting down, as a bare loop.close() does."""
    bare = asyncio.new_event_loop()
    try:
        bare.run_until_complete(call())
    finally:
        bare.close()


@pytest.mark.postgres
@pytest.mark.usefixtures("no_warnings")
def test_postgres_loop_closed_without_shutdown(fast: bool) -> None:
    """Its sockets are closed at once by the fast path, else kept open, and nothing warns."""
    pg = _Postgres()
    armed = set(_loops._armed)
    try:
        _use_on_a_bare_loop(pg.store, _claim(pg.store, "r"))
        assert pg.connections(1) == 1
        assert asyncio.run(pg.store.get_run("app", "r")) is not None
        # terminate() still tells the server, which ends the session either way.
        assert pg.connections(0) == 0
        # The fallback keeps the connection, whose socket stays open, referenced by its hook.
        assert len(_loops._armed - armed) == (0 if fast else 1)
    finally:
        pg.drop()


class _Redis:
    """A Redis store whose connections the server can count by client name."""

    def __init__(self) -> None:
        self.url = asyncio.run(_services.redis_url())
        self.prefix = _services.unique_name("redis")
        self.name = f"durable-fastpaths-{uuid.uuid4().hex[:8]}"
        separator = "&" if "?" in self.url else "?"
        module = _services.import_driver("durable.stores.redis")
        named = f"{self.url}{separator}client_name={self.name}"
        self.store = module.RedisStore(named, prefix=self.prefix)

    async def _count(self) -> int:
        client = _services.import_driver("redis.asyncio").Redis.from_url(self.url)
        try:
            clients = await client.client_list()
            return sum(1 for entry in clients if entry["name"] == self.name)
        finally:
            await client.aclose()

    def connections(self, expected: int) -> int:
        """The store's connections on the server, once it shows ``expected`` (or after 5 s)."""
        deadline = time.monotonic() + 5
        while (count := asyncio.run(self._count())) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return count

    def drop(self) -> None:
        asyncio.run(_services.delete_redis_prefix(self.url, self.prefix))


@pytest.mark.redis
@pytest.mark.usefixtures("no_warnings")
def test_redis_connections_close_when_their_loop_shuts_down(fast: bool) -> None:
    """A store never closed leaves no connection once asyncio.run returns, fast paths or not."""
    redis = _Redis()
    armed = set(_loops._armed)
    try:
        assert asyncio.run(_claim(redis.store, "r")()).acquired
        assert redis.connections(0) == 0
        assert asyncio.run(redis.store.get_run("app", "r")) is not None
        assert redis.connections(0) == 0
        assert _loops._armed == armed
    finally:
        redis.drop()


@pytest.mark.redis
@pytest.mark.usefixtures("no_warnings")
def test_redis_loop_closed_without_shutdown(fast: bool) -> None:
    """Its connections are closed at once by the fast path, else kept open without a warning."""
    redis = _Redis()
    armed = set(_loops._armed)
    try:
        _use_on_a_bare_loop(redis.store, _claim(redis.store, "r"))
        assert redis.connections(1) == 1
        assert asyncio.run(redis.store.get_run("app", "r")) is not None
        parked = _loops._armed - armed
        if fast:
            assert redis.connections(0) == 0
            assert parked == set()
        else:
            # The fallback: the bare loop's connection stays open, referenced by its hook.
            assert redis.connections(1) == 1
            assert len(parked) == 1
    finally:
        redis.drop()
