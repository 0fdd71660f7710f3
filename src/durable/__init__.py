"""Lightweight workflow durability: make any async workflow resumable after crashes.

from durable import Workflow

wf = Workflow("my-app")

@wf.task
async def fetch(url: str) -> dict: ...

@wf.workflow(id="pipeline-{source}")
async def run_pipeline(source: str) -> None:
    data = await fetch(f"https://api.example.com/{source}")
"""

import logging as _logging
import typing as _typing

from durable._handle import RunHandle as RunHandle
from durable._task import Task as Task
from durable._task import get_current_step as current_step
from durable._workflow import Workflow as Workflow
from durable._workflow import WorkflowFunction as WorkflowFunction
from durable.backoff import BackoffStrategy as BackoffStrategy
from durable.backoff import constant as constant
from durable.backoff import exponential as exponential
from durable.backoff import linear as linear
from durable.engine.context import StepContext as StepContext
from durable.errors import DurableError as DurableError
from durable.errors import NonRetryableError as NonRetryableError
from durable.stores.base import Store as Store
from durable.stores.sqlite import SQLiteStore as SQLiteStore
from durable.worker.queues import Queue as Queue
from durable.worker.schedules import Schedule as Schedule

if _typing.TYPE_CHECKING:
    from durable._inspect import ErrorInfo as ErrorInfo
    from durable._inspect import RunInfo as RunInfo
    from durable._inspect import StepInfo as StepInfo
    from durable._listing import QueueStats as QueueStats
    from durable.context import RunContext as RunContext
    from durable.stores.memory import InMemoryStore as InMemoryStore
    from durable.stores.redis import RedisStore as RedisStore

__version__ = "0.3.0"

# Silent unless the application configures logging (the library convention):
# without it, Python's last-resort handler would print warnings to stderr.
_logging.getLogger("durable").addHandler(_logging.NullHandler())

__all__ = [
    "BackoffStrategy",
    "DurableError",
    "ErrorInfo",
    "InMemoryStore",
    "NonRetryableError",
    "Queue",
    "QueueStats",
    "RedisStore",
    "RunContext",
    "RunHandle",
    "RunInfo",
    "SQLiteStore",
    "Schedule",
    "StepContext",
    "StepInfo",
    "Store",
    "Task",
    "Workflow",
    "WorkflowFunction",
    "constant",
    "current_step",
    "exponential",
    "linear",
]

# Loaded on first use: only programs that inspect runs pay for these classes,
# only tests for the in-memory store, and only Redis users import redis.
_LAZY = {
    "ErrorInfo": "durable._inspect",
    "InMemoryStore": "durable.stores.memory",
    "QueueStats": "durable._listing",
    "RedisStore": "durable.stores.redis",
    "RunContext": "durable.context",
    "RunInfo": "durable._inspect",
    "StepInfo": "durable._inspect",
}


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as exc:
            if exc.name != "redis":
                raise
            raise ImportError(
                "durable.RedisStore needs the redis extra: pip install 'python-durable[redis]'"
            ) from exc
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
