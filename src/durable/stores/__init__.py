"""Persistence backends. ``PostgresStore`` and ``RedisStore`` load their driver on first use.

:func:`from_url` turns the ``db=`` of a :class:`~durable.Workflow` (a path, a
URL or a store) into a store.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from durable.errors import ConfigurationError
from durable.stores.base import (
    Claim as Claim,
)
from durable.stores.base import (
    LeaseState as LeaseState,
)
from durable.stores.base import (
    NewRun as NewRun,
)
from durable.stores.base import (
    RunRecord as RunRecord,
)
from durable.stores.base import (
    SavedStep as SavedStep,
)
from durable.stores.base import (
    StepRecord as StepRecord,
)
from durable.stores.base import (
    Store as Store,
)
from durable.stores.sqlite import SQLiteStore as SQLiteStore

if TYPE_CHECKING:
    from durable.stores.memory import InMemoryStore as InMemoryStore
    from durable.stores.postgres import PostgresStore as PostgresStore
    from durable.stores.redis import RedisStore as RedisStore

__all__ = [
    "Claim",
    "InMemoryStore",
    "LeaseState",
    "NewRun",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "SavedStep",
    "RunRecord",
    "StepRecord",
    "Store",
    "from_url",
]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def from_url(db: str | os.PathLike[str] | Store) -> Store:
    """The store that ``db`` names, not yet opened.

    - a :class:`Store` instance: itself;
    - a path (``"jobs.db"``, a :class:`os.PathLike`) or ``sqlite:///jobs.db``
      (``sqlite:////abs/path.db`` for an absolute path): a :class:`SQLiteStore`;
    - ``postgresql://...`` (also ``postgres://``, and the SQLAlchemy-style
      ``postgresql+asyncpg://``): a :class:`PostgresStore` (the ``postgres`` extra);
    - ``redis://...``, ``rediss://...``, ``unix://...``: a :class:`RedisStore`
      (the ``redis`` extra).

    Raises :class:`~durable.errors.ConfigurationError` for anything else.
    """
    if isinstance(db, Store):
        return db
    if isinstance(db, os.PathLike):
        return SQLiteStore(os.fspath(db))
    if not isinstance(db, str):
        raise ConfigurationError(f"db must be a path, a URL or a Store instance, got {db!r}")
    if not db:
        raise ConfigurationError("db must not be empty")
    scheme = db.split("://", 1)[0].lower() if "://" in db else ""
    if scheme in _POSTGRES_SCHEMES:
        from durable.stores import postgres

        # asyncpg knows postgresql:// and postgres:// only.
        return postgres.from_url(scheme.removesuffix("+asyncpg") + db[len(scheme) :])
    if scheme in _REDIS_SCHEMES:
        from durable.stores import redis

        return redis.from_url(db)
    if scheme == "sqlite":
        return SQLiteStore.from_url(db)
    if scheme:
        raise ConfigurationError(
            f"db URL scheme {scheme!r} is not supported; use a SQLite path, "
            "'sqlite:///path', 'postgresql://...', 'redis://...' or a Store instance"
        )
    return SQLiteStore(db)


def __getattr__(name: str) -> Any:
    # The drivers are optional extras: import them only when asked for; the
    # in-memory store is for tests.
    if name == "InMemoryStore":
        from durable.stores.memory import InMemoryStore

        return InMemoryStore
    if name == "PostgresStore":
        from durable.stores.postgres import PostgresStore

        return PostgresStore
    if name == "RedisStore":
        from durable.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
