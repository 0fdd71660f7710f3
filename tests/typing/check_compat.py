"""Type-checked by mypy, never run: python-durable 0.2's names and options keep their types."""

from __future__ import annotations

from typing import Any, assert_type

from durable import (
    BackoffStrategy,
    InMemoryStore,
    RedisStore,
    RunContext,
    SQLiteStore,
    Store,
    Workflow,
    constant,
    exponential,
    linear,
)
from durable.context import current_run
from durable.redis_store import RedisStore as RedisStoreAlias
from durable.store import InMemoryStore as InMemoryStoreAlias
from durable.workflow import Workflow as WorkflowAlias

strategy: BackoffStrategy = exponential()
wf = Workflow("typing-compat", "jobs.db", 2, linear(start=1, step=1))
also = WorkflowAlias("typing-compat-2", db=InMemoryStoreAlias(), default_backoff=constant(0))
stores: list[Store] = [SQLiteStore("x.db"), InMemoryStore(), RedisStore(), RedisStoreAlias()]
Workflow("typing-compat-3", default_retries="3")  # type: ignore[arg-type]


@wf.task
async def step() -> int:
    return 1


@wf.workflow(id="flow-{n}")
async def flow(n: int) -> Any:
    run = current_run()
    assert_type(run, RunContext)
    assert_type(run.workflow_id, str)
    assert_type(await step(), int)
    return await wf.signal("go", poll=2.0)


async def operate(store: Store) -> None:
    assert_type(await wf.complete("flow-1", "go", {"ok": True}), bool)
    assert_type(await wf.complete("flow-1", "go"), bool)
    await store.setup()
