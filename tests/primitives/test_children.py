"""Child workflows: a workflow called inside another is a recorded step with its own run."""

from __future__ import annotations

import asyncio

import pytest
from tests._journal import Journal

from durable import Workflow
from durable.errors import RunConflictError


class ChildBroke(Exception):
    """A module-level error type, so a recorded child failure can be rebuilt."""


async def test_child_run_uses_its_own_template_and_links_its_parent(wf: Workflow) -> None:
    """The child's run id follows its own id template and the parent records it as a step."""

    @wf.workflow(id="invoice-{number}")
    async def invoice(number: int) -> str:
        return f"invoice {number}"

    @wf.workflow(id="order-{order}")
    async def order(order: str) -> list[str]:
        return [await invoice(1), await invoice(2)]

    assert await order("o7") == ["invoice 1", "invoice 2"]
    parent = await wf.get_run("order-o7")
    assert [(s.step_id, s.task, s.result) for s in parent.steps] == [
        ("invoice", "invoice", "invoice 1"),
        ("invoice#1", "invoice", "invoice 2"),
    ]
    child = await wf.get_run("invoice-2")
    assert child.status == "completed"
    assert child.parent_run_id == "order-o7"
    assert child.inputs == {"number": 2}


async def test_completed_child_replays_without_running(wf: Workflow) -> None:
    """When the parent resumes, a completed child returns its output without running again."""
    journal = Journal()
    fail = {"armed": True}

    @wf.workflow(id="child-{n}")
    async def child(n: int) -> int:
        journal("child")
        return n * 10

    @wf.task
    async def after() -> None:
        journal("after")
        if fail["armed"]:
            raise RuntimeError("parent step failed")

    @wf.workflow(id="parent")
    async def parent() -> int:
        value = await child(4)
        await after()
        return value

    with pytest.raises(RuntimeError):
        await parent()
    fail["armed"] = False
    assert await parent() == 40
    assert journal.counts == {"child": 1, "after": 2}


async def test_child_failure_is_recorded_and_catchable(wf: Workflow) -> None:
    """A failing child raises its error in the parent, which may catch it; replay raises it too."""
    journal = Journal()

    @wf.workflow(id="fragile")
    async def fragile() -> None:
        journal("fragile")
        raise ChildBroke("no stock")

    @wf.workflow(id="sturdy")
    async def sturdy() -> str:
        try:
            await fragile()
        except ChildBroke as exc:
            return f"handled: {exc}"
        return "unreachable"

    assert await sturdy() == "handled: no stock"
    assert await sturdy() == "handled: no stock"
    assert journal.counts == {"fragile": 1}
    step = (await wf.get_run("sturdy")).steps[0]
    assert step.status == "failed"
    assert step.error is not None
    assert step.error.message == "no stock"
    assert (await wf.get_run("fragile")).status == "failed"


async def test_child_can_sleep_and_wait_for_signals(wf: Workflow) -> None:
    """Durable waits inside a child belong to the child's run, signalled by the child's id."""

    @wf.workflow(id="approval-{item}")
    async def approval(item: str) -> str:
        await wf.sleep(0.01)
        decision: str = await wf.signal("decision")
        return f"{item}: {decision}"

    @wf.workflow(id="batch")
    async def batch() -> list[str]:
        return [await approval("a"), await approval("b")]

    await wf.send_signal("approval-a", "decision", "yes")
    await wf.send_signal("approval-b", "decision", "no")
    assert await batch() == ["a: yes", "b: no"]
    assert [s.task for s in (await wf.get_run("approval-a")).steps] == [
        "durable.sleep",
        "durable.signal:decision",
    ]


async def test_a_workflow_calling_itself_under_its_own_run_id_is_refused(wf: Workflow) -> None:
    """A child resolving to its parent's run id (or an ancestor's) would wait forever: refused."""

    @wf.workflow(id="loop")
    async def loop(n: int) -> int:
        return n if n == 0 else await loop(n - 1)

    @wf.workflow(id="level-{n}")
    async def level(n: int, top: str) -> int:
        if n == 0:
            return await level.run(top, 5, top)
        return await level(n - 1, top)

    with pytest.raises(RunConflictError, match="'loop'"):
        await asyncio.wait_for(loop(3), 5)
    with pytest.raises(RunConflictError, match="'level-2'"):
        await asyncio.wait_for(level(2, "level-2"), 5)
