"""The seam between the public facade and the engine.

The engine never imports the facade (``durable.Workflow``, ``durable.Task``):
it is handed a :class:`Runtime` (the app's name, store and limits, and the
waits in progress) and sees tasks and workflows through the small protocols
of ``durable.engine.specs``, which the facade's classes satisfy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from durable.engine.waits import Waits

if TYPE_CHECKING:
    from durable.engine.observe import Observer
    from durable.engine.specs import WorkflowSpec
    from durable.stores.base import Store


class Runtime:
    """One app as the engine sees it: name, store, limits, registry and waits.

    ``workflows`` is the app's registry itself (read, never written here), so
    workflows registered after the runtime was made are found by recovery.
    """

    __slots__ = (
        "app",
        "heartbeat",
        "lease_ttl",
        "max_value_bytes",
        "observer",
        "store",
        "waits",
        "workflows",
    )

    def __init__(
        self,
        *,
        app: str,
        store: Store,
        lease_ttl: float,
        heartbeat: float,
        max_value_bytes: int,
        workflows: Mapping[str, WorkflowSpec],
    ) -> None:
        self.app = app
        self.store = store
        self.lease_ttl = lease_ttl
        self.heartbeat = heartbeat
        self.max_value_bytes = max_value_bytes
        self.workflows = workflows
        # Tracing and metrics hooks (durable.engine.observe); None costs nothing.
        self.observer: Observer | None = None
        # Read through the runtime: a test may give the app another store.
        self.waits = Waits(
            lambda wanted: self.store.read_signals(app, wanted),
            lambda seconds: self.store.wait_for_signal(app, seconds),
        )

    def trace_context(self) -> str | None:
        """What the observer keeps with a run recorded now; None without an observer."""
        observer = self.observer
        return None if observer is None else observer.trace_context()
