"""A Store that leaves the optional methods to the base class still passes the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from durable.stores.base import Store
from durable.stores.memory import InMemoryStore
from durable.testing.contract import StoreContract


class _BaseDefaults(InMemoryStore):
    """The in-memory store with Store's defaults in place of its own batch and read methods."""

    get_run = Store.get_run
    renew_leases = Store.renew_leases
    read_signals = Store.read_signals


def test_the_defaults_are_the_base_class_methods() -> None:
    """The store below really runs the base class's defaults."""
    for name in ("get_run", "renew_leases", "read_signals"):
        assert getattr(_BaseDefaults, name) is getattr(Store, name)
        assert getattr(InMemoryStore, name) is not getattr(Store, name)


class TestBaseDefaults(StoreContract):
    """The contract suite against the defaults: read_signal, renew_lease and load_run per item."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        async with _BaseDefaults() as store:
            yield store
