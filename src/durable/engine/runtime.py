"""The seam between the public facade and the engine.

The engine never imports the facade (``durable.Workflow``, ``durable.Task``):
it is handed a :class:`Runtime` (the app's name, store and limits, and the
waits in progress) and sees tasks and workflows through the small protocols
below, which the facade's classes satisfy.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from durable.engine.waits import Waits
from durable.stores.base import Store


class TaskSpec(Protocol):
    """What the engine needs of a task: its function and how to retry it."""

    @property
    def name(self) -> str: ...
    @property
    def fn(self) -> Callable[..., Coroutine[Any, Any, Any]]: ...
    @property
    def retries(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def result_type(self) -> Any: ...

    def backoff(self, retry: int, /) -> float: ...
    def retry_on(self, error: BaseException, /) -> bool: ...


class WorkflowSpec(Protocol):
    """What the engine needs of a workflow: its function and its stored-value codec."""

    @property
    def name(self) -> str: ...
    @property
    def fn(self) -> Callable[..., Coroutine[Any, Any, Any]]: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def result_type(self) -> Any: ...

    def decode_inputs(self, inputs: str) -> tuple[tuple[Any, ...], dict[str, Any]]: ...
    def decode_output(self, output: str | None) -> Any: ...


class Runtime:
    """One app as the engine sees it: name, store, limits, registry and waits.

    ``workflows`` is the app's registry itself (read, never written here), so
    workflows registered after the runtime was made are found by recovery.
    """

    __slots__ = ("app", "heartbeat", "lease_ttl", "max_value_bytes", "store", "waits", "workflows")

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
        # Read through the runtime: a test may give the app another store.
        self.waits = Waits(lambda wanted: self.store.read_signals(app, wanted))
