"""Fixtures shared by every suite: a store of each kind, and apps on it.

``DURABLE_TEST_UVLOOP=1`` runs every async test on a uvloop event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from tests import _services

from durable import Workflow
from durable.stores.base import Store


@pytest.fixture(params=_services.STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened store of each kind (memory, SQLite, PostgreSQL, Redis), private to the test."""
    instance, cleanup = await _services.new_store(request.param, tmp_path)
    try:
        await instance.open()
        yield instance
    finally:
        await instance.close()
        await cleanup()


@pytest.fixture
async def make_app(store: Store) -> AsyncIterator[Callable[..., Workflow]]:
    """A factory of apps sharing the test's store; every app is closed afterwards."""
    apps: list[Workflow] = []

    def make(name: str = "test-app", **options: Any) -> Workflow:
        # A suite checks one behaviour at a time: here a bare task fails at its
        # first error unless the test asks for retries. The app defaults
        # themselves (3 retries) are tested in tests/compat.
        options.setdefault("default_retries", 0)
        app = Workflow(name, db=store, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.close()


@pytest.fixture
def wf(make_app: Callable[..., Workflow]) -> Workflow:
    """An app named 'test-app' on the test's store."""
    return make_app()


if os.environ.get("DURABLE_TEST_UVLOOP") == "1":
    # Defined only when asked for: pytest-asyncio wants a loop from every
    # implementation of this hook.

    @pytest.hookimpl(optionalhook=True)
    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        """Every async test runs on a uvloop event loop."""
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
