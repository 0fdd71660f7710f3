"""The primitives run with a short lease, so heartbeats (and remote cancels) arrive quickly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from durable import Workflow


@pytest.fixture
def wf(make_app: Callable[..., Workflow]) -> Workflow:
    """An app with a short lease and a fast heartbeat."""
    return make_app("prim-app", lease_ttl=1.5, heartbeat=0.05)
