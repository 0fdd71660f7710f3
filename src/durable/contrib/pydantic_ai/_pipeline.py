"""Decorators for agent pipelines: durable tools and pipeline entry points."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from durable.backoff import Backoff, exponential

if TYPE_CHECKING:
    from durable import Task, Workflow, WorkflowFunction

P = ParamSpec("P")
R = TypeVar("R")

AsyncFn = Callable[P, Coroutine[Any, Any, R]]


def durable_tool(
    wf: Workflow,
    *,
    name: str | None = None,
    retries: int = 2,
    backoff: Backoff | None = None,
) -> Callable[[AsyncFn[P, R]], Task[P, R]]:
    """Make an async function a checkpointed, retried task of ``wf``, with tool defaults.

    The same as ``@wf.task`` with 2 retries and ``exponential(base=2, max=30)``
    backoff by default, the defaults python-durable 0.2 gave tools.
    """
    chosen = backoff or exponential(base=2, max=30)

    def decorate(fn: AsyncFn[P, R]) -> Task[P, R]:
        return wf.task(name=name, retries=retries, backoff=chosen)(fn)

    return decorate


def durable_pipeline(
    wf: Workflow,
    *,
    id: str,
) -> Callable[[AsyncFn[P, R]], WorkflowFunction[P, R]]:
    """Mark the entry point of a multi-agent pipeline: ``@wf.workflow(id=id)``."""
    return wf.workflow(id=id)
