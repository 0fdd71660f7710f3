"""stores.from_url: the db= of a Workflow, from a path, a URL or a store."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests import _services

from durable import Workflow
from durable.errors import ConfigurationError
from durable.stores import InMemoryStore, SQLiteStore, from_url


def test_a_store_is_used_as_it_is() -> None:
    """A Store instance is returned unchanged."""
    store = InMemoryStore()
    assert from_url(store) is store


@pytest.mark.parametrize("db", ["jobs.db", Path("jobs.db"), "sqlite:///jobs.db"])
def test_paths_and_sqlite_urls_give_a_sqlite_store(db: str | Path) -> None:
    """A path, a PathLike or a sqlite:/// URL names a SQLite file."""
    store = from_url(db)
    assert isinstance(store, SQLiteStore)
    assert store.path == "jobs.db"


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("", "db must not be empty"),
        ("mysql://u@h/db", "scheme 'mysql' is not supported"),
        (42, "db must be a path, a URL or a Store instance, got 42"),
    ],
)
def test_bad_values_are_refused(db: object, message: str) -> None:
    """Anything else is a ConfigurationError saying what is accepted."""
    with pytest.raises(ConfigurationError, match=message):
        from_url(db)  # type: ignore[arg-type]


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql+asyncpg", "postgres+asyncpg", "postgres"])
async def test_postgres_url_spellings_reach_the_server(scheme: str) -> None:
    """postgresql+asyncpg:// (as SQLAlchemy writes it) and postgres:// connect and run."""
    dsn = await _services.postgres_dsn()
    schema = _services.unique_name("url")
    url = scheme + dsn[dsn.index("://") :] + f"?schema={schema}"
    app = Workflow("url-app", db=url)

    @app.workflow(id="hello")
    async def hello() -> str:
        return "hi"

    try:
        assert await hello() == "hi"
        assert (await app.get_run("hello")).status == "completed"
    finally:
        await app.close()
        await _services.drop_postgres_schema(dsn, schema)
