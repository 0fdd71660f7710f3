"""Timeouts: a task timeout bounds each attempt; a workflow timeout fails the run."""

from __future__ import annotations

import asyncio

import pytest
from tests._journal import Journal

from durable import Workflow
from durable.errors import WorkflowTimeoutError
from durable.testing import no_backoff


async def test_timed_out_attempt_is_retried(wf: Workflow) -> None:
    """An attempt over the task timeout counts as a failure and the retry runs."""
    journal = Journal()

    @wf.task(retries=2, timeout=0.05)
    async def slow_then_fast() -> str:
        journal("attempt")
        if len(journal) == 1:
            await asyncio.sleep(5)
        return "fast"

    @wf.workflow(id="retry-timeout")
    async def flow() -> str:
        return await slow_then_fast()

    with no_backoff() as waits:
        assert await flow() == "fast"
    assert len(journal) == 2
    assert len(waits) == 1
    step = (await wf.get_run("retry-timeout")).steps[0]
    assert step.attempts == 2
    assert step.status == "completed"


async def test_task_timing_out_every_attempt_fails_with_timeout(wf: Workflow) -> None:
    """When every attempt times out, the step records a TimeoutError after all attempts."""
    journal = Journal()

    @wf.task(retries=1, timeout=0.03)
    async def hangs() -> None:
        journal("attempt")
        await asyncio.sleep(5)

    @wf.workflow(id="always-slow")
    async def flow() -> None:
        await hangs()

    with no_backoff(), pytest.raises(TimeoutError, match=r"task 'hangs' .*timeout of 0\.03s"):
        await flow()
    assert len(journal) == 2
    info = await wf.get_run("always-slow")
    assert info.status == "failed"
    assert info.steps[0].attempts == 2
    assert info.steps[0].error is not None
    assert info.steps[0].error.type == "builtins.TimeoutError"


async def test_workflow_timeout_fails_the_run_clearly(wf: Workflow) -> None:
    """A workflow running past its timeout (here in a durable sleep) fails: WorkflowTimeoutError."""
    journal = Journal()

    @wf.task
    async def never() -> None:
        journal("never")

    @wf.workflow(id="too-slow", timeout=0.2)
    async def flow() -> None:
        await wf.sleep(5)
        await never()

    with pytest.raises(WorkflowTimeoutError, match=r"timeout of 0\.2s"):
        await asyncio.wait_for(flow(), 3)
    info = await wf.get_run("too-slow")
    assert info.status == "failed"
    assert info.error is not None
    assert info.error.type == "durable.errors.WorkflowTimeoutError"
    assert journal.entries == []
    with pytest.raises(WorkflowTimeoutError):
        await flow()


async def test_a_task_timeout_inside_a_workflow_timeout_stays_a_task_timeout(
    wf: Workflow,
) -> None:
    """Only the workflow's own limit is a WorkflowTimeoutError; a task's TimeoutError is not."""

    @wf.task(timeout=0.05)
    async def slow() -> int:
        await asyncio.sleep(5)
        return 1

    @wf.workflow(id="long-limit", timeout=3600)
    async def flow() -> int:
        return await slow()

    with pytest.raises(TimeoutError) as info:
        await asyncio.wait_for(flow(), 5)
    assert not isinstance(info.value, WorkflowTimeoutError)
    assert "task 'slow'" in str(info.value)
    run = await wf.get_run("long-limit")
    assert run.error is not None
    assert run.error.type == "builtins.TimeoutError"


async def test_the_bodys_own_timeout_error_is_not_the_tasks_limit(wf: Workflow) -> None:
    """A TimeoutError the task body raises itself passes through unchanged."""

    @wf.task(timeout=60)
    async def gives_up() -> None:
        raise TimeoutError("upstream took too long")

    @wf.workflow(id="own-timeout", timeout=3600)
    async def flow() -> None:
        await gives_up()

    with pytest.raises(TimeoutError, match=r"^upstream took too long$"):
        await flow()
