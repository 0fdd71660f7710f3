"""Every store kind of the ``store`` fixture passes the one Store contract suite."""

from __future__ import annotations

from durable.testing.contract import StoreContract


class TestStoreContract(StoreContract):
    """The contract suite, run against memory, SQLite, PostgreSQL and Redis."""
