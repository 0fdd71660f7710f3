"""durable.testing.fresh_store: each test of a module-level app starts with no runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from durable import Workflow
from durable.errors import ConfigurationError
from durable.stores import SQLiteStore
from durable.testing import InMemoryStore, fresh_store

calls: list[str] = []

# As in an application: one app, defined once at module level.
app = Workflow("shop", db=InMemoryStore())


@app.task
async def charge(order_id: str) -> str:
    calls.append(order_id)
    return f"charged {order_id}"


@app.workflow(id="order-{order_id}")
async def order(order_id: str) -> str:
    return await charge(order_id)


async def test_runs_of_one_block_are_not_seen_in_the_next() -> None:
    """The same run id executes again in a second block: its first run stayed in the first store."""
    calls.clear()
    async with fresh_store(app) as first:
        assert await order("1") == "charged 1"
    async with fresh_store(app) as second:
        assert second is not first
        assert await app.list_runs() == []
        assert await order("1") == "charged 1"
    assert calls == ["1", "1"]


async def test_the_app_gets_its_own_store_back_afterwards() -> None:
    """After the block the app uses the store it had, with that store's runs."""
    original = app.store
    await order("kept")
    async with fresh_store(app):
        assert app.store is not original
        assert await app.list_runs() == []
    assert app.store is original
    assert [run.run_id for run in await app.list_runs()] == ["order-kept"]


async def test_a_sqlite_store_can_be_given(tmp_path: Path) -> None:
    """fresh_store takes a store to use, e.g. SQLite on a temporary path, and closes it."""
    store = SQLiteStore(tmp_path / "t.db")
    async with fresh_store(app, store) as used:
        assert used is store
        assert await order("sq") == "charged sq"
    assert (tmp_path / "t.db").exists()
    async with SQLiteStore(tmp_path / "t.db") as reopened:
        run = await reopened.get_run("shop", "order-sq")
    assert run is not None
    assert run.status == "completed"


async def test_the_store_cannot_change_while_runs_execute() -> None:
    """Swapping the store under a run in flight is refused with a clear error."""
    blocker = Workflow("busy", db=InMemoryStore())
    release = asyncio.Event()

    @blocker.workflow(id="busy")
    async def busy() -> None:
        await release.wait()

    running = asyncio.ensure_future(busy())
    await asyncio.sleep(0.05)
    with pytest.raises(ConfigurationError, match="cannot change its store while runs execute"):
        async with fresh_store(blocker):
            pass
    release.set()
    await running
    await blocker.close()
