"""The store classes under python-durable 0.2's module path; see :mod:`durable.stores`."""

from durable.stores.base import Store as Store
from durable.stores.memory import InMemoryStore as InMemoryStore
from durable.stores.sqlite import SQLiteStore as SQLiteStore

__all__ = ["InMemoryStore", "SQLiteStore", "Store"]
