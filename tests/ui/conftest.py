"""Fixtures of the UI tests: the demo app on each kind of store, with runs in each state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from tests.ui import _ui_app

from durable.errors import DurableError
from durable.stores.base import Store


@pytest.fixture
async def demo(store: Store) -> AsyncIterator[_ui_app.Demo]:
    """The demo app on the test's store, with two completed runs and a failed one."""
    app = _ui_app.build(store)
    await populate(app)
    try:
        yield app
    finally:
        await app.wf.close()


async def populate(app: _ui_app.Demo) -> None:
    """Two completed greetings and an order that failed charging a negative amount."""
    await app.greet(name="ada")
    await app.greet(name="bob")
    with contextlib.suppress(DurableError, ValueError):
        await app.order(order="bad", amount=-1)
