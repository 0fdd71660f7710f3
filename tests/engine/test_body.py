"""The body of a run: once its outcome is recorded, no step of it starts."""

from __future__ import annotations

import asyncio

import pytest

from durable import Workflow


async def test_a_gather_sibling_starts_no_task_body_after_its_run_ended(wf: Workflow) -> None:
    """A branch still sleeping when a sibling failed the run never executes its task body."""
    side_effects: list[str] = []

    @wf.task
    async def send_email() -> None:
        side_effects.append("sent")

    @wf.task
    async def boom() -> None:
        raise ValueError("boom")

    async def branch() -> None:
        await asyncio.sleep(0.2)
        await send_email()

    @wf.workflow(id="gather-{n}")
    async def flow(n: int) -> None:
        await asyncio.gather(boom(), branch())

    with pytest.raises(ValueError, match="boom"):
        await flow(n=1)
    assert (await wf.get_run("gather-1")).status == "failed"
    await asyncio.sleep(0.5)  # well past the branch's wake-up
    assert side_effects == []
    assert [s.task for s in (await wf.get_run("gather-1")).steps] == ["boom"]


async def test_a_straggler_that_was_mid_step_is_cancelled_and_recorded_nowhere(
    wf: Workflow,
) -> None:
    """A sibling step still running when the run fails is cancelled, and saves nothing."""
    started = asyncio.Event()
    finished: list[str] = []

    @wf.task
    async def slow() -> str:
        started.set()
        await asyncio.sleep(5)
        finished.append("slow")
        return "late"

    @wf.task
    async def boom() -> None:
        await started.wait()
        raise ValueError("boom")

    @wf.workflow(id="mid-{n}")
    async def flow(n: int) -> None:
        await asyncio.gather(slow(), boom())

    with pytest.raises(ValueError, match="boom"):
        await flow(n=1)
    run = await wf.get_run("mid-1")
    assert run.status == "failed"
    assert [s.task for s in run.steps] == ["boom"]
    assert finished == []
