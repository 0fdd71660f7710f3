"""Fixtures of the CLI tests: a store URL of each kind, seeded with the shop app's runs."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests import _services
from tests.cli import _shop

from durable.cli._root import cli

URL_KINDS = (
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
)


@pytest.fixture(params=URL_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store of each kind (SQLite file, PostgreSQL schema, Redis prefix)."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.db'}"
        return
    if kind == "postgres":
        dsn = asyncio.run(_services.postgres_dsn())
        schema = _services.unique_name("cli")
        yield f"{dsn}?schema={schema}"
        asyncio.run(_services.drop_postgres_schema(dsn, schema))
        return
    url = asyncio.run(_services.redis_url())
    prefix = _services.unique_name("cli")
    yield f"{url}?prefix={prefix}"
    asyncio.run(_services.delete_redis_prefix(url, prefix))


@pytest.fixture
def seeded(db_url: str) -> str:
    """``db_url`` holding the shop app's seeded runs."""
    _shop.seed_store(db_url)
    return db_url


@pytest.fixture
def app_module(db_url: str, tmp_path: Path) -> Iterator[str]:
    """``module:attr`` of a module in the working directory exposing the shop app on ``db_url``."""
    name = f"shop_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        f"from tests.cli._shop import build\n\nwf = build({db_url!r}).wf\n"
    )
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield f"{name}:wf"
    finally:
        os.chdir(old)
        sys.modules.pop(name, None)


# The connection comes from the options only, never from the tester's environment.
_NO_ENV: dict[str, str | None] = {"DURABLE_DB": None, "DURABLE_APP": None}


class Durable:
    """Runs ``durable`` in this process with click's CliRunner, on one store."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, app: str = _shop.APP, db: str | None = "") -> Result:
        options = ["--app", app]
        if db is not None:
            options += ["--db", db or self.db]
        return self.runner.invoke(cli, [*options, *args], catch_exceptions=False, env=_NO_ENV)


@pytest.fixture
def durable(seeded: str) -> Durable:
    """The ``durable`` command on the seeded store."""
    return Durable(seeded)
