"""Fixtures shared by the engine tests: an app on a real SQLite file (and in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from durable import Workflow
from durable.stores.memory import InMemoryStore
from durable.stores.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "memory"])
async def make_app(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Workflow]]:
    """A factory of apps sharing one store (a real SQLite file, or memory)."""
    store = SQLiteStore(tmp_path / "durable.db") if request.param == "sqlite" else InMemoryStore()
    apps: list[Workflow] = []

    def make(name: str = "test-app", **options: Any) -> Workflow:
        app = Workflow(name, db=store, **options)
        apps.append(app)
        return app

    yield make
    await store.close()


@pytest.fixture
def wf(make_app: Callable[..., Workflow]) -> Workflow:
    """An app named 'test-app' on the parametrized store."""
    return make_app()
