"""Cancellation: wf.cancel stops a run at its next step boundary; wf.resume continues it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests._journal import Journal
from tests.primitives._waiting import wait_for_run

from durable import Workflow
from durable.errors import RunCancelledError, RunNotFoundError, WorkflowTimeoutError
from durable.testing import skip_sleeps


async def wait_for_journal(journal: Journal, entries: int) -> None:
    for _ in range(500):
        if len(journal) >= entries:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"journal never reached {entries} entries: {journal.entries}")


async def test_cancel_interrupts_a_signal_wait_and_resume_continues(wf: Workflow) -> None:
    """A run waiting for a signal stops at once when cancelled; resume replays and finishes it."""
    journal = Journal()

    @wf.task
    async def prepare() -> str:
        journal("prepare")
        return "prepared"

    @wf.task
    async def ship(decision: str) -> str:
        journal("ship")
        return f"shipped after {decision}"

    @wf.workflow(id="order-{n}")
    async def order(n: int) -> str:
        await prepare()
        decision: str = await wf.signal("approve")
        return await ship(decision)

    call = asyncio.ensure_future(order(1))
    await wait_for_run(wf, "order-1", steps=1)
    cancelled = time.monotonic()
    await wf.cancel("order-1")
    with pytest.raises(RunCancelledError):
        await call
    # The waiting run stops promptly, not after its signal wait.
    assert time.monotonic() - cancelled < 0.9
    assert (await wf.get_run("order-1")).status == "cancelled"
    with pytest.raises(RunCancelledError, match="resume"):
        await order(1)

    await wf.send_signal("order-1", "approve", "yes")
    assert await wf.resume("order-1") == "shipped after yes"
    assert journal.entries == ["prepare", "ship"]
    assert (await wf.get_run("order-1")).status == "completed"
    assert await order(1) == "shipped after yes"


async def test_cancel_stops_at_the_next_step_boundary(wf: Workflow) -> None:
    """A task already running finishes and is recorded, but the next step never starts."""
    journal = Journal()
    release = asyncio.Event()

    @wf.task
    async def first() -> None:
        journal("first started")
        await release.wait()
        journal("first done")

    @wf.task
    async def second() -> None:
        journal("second")

    @wf.workflow(id="boundary")
    async def flow() -> str:
        await first()
        await second()
        return "done"

    call = asyncio.ensure_future(flow())
    await wait_for_journal(journal, 1)
    await wf.cancel("boundary")
    release.set()
    with pytest.raises(RunCancelledError):
        await call
    assert journal.entries == ["first started", "first done"]
    info = await wf.get_run("boundary")
    assert info.status == "cancelled"
    assert [s.task for s in info.steps] == ["first"]

    assert await wf.resume("boundary") == "done"
    assert journal.entries == ["first started", "first done", "second"]


async def test_cancel_interrupts_a_sleep(wf: Workflow) -> None:
    """A long durable sleep is cut short by a cancel in the same process."""

    @wf.workflow(id="long-nap")
    async def flow() -> None:
        await wf.sleep(60)

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "long-nap", steps=1)
    await wf.cancel("long-nap")
    with pytest.raises(RunCancelledError):
        await asyncio.wait_for(call, 1)
    assert (await wf.get_run("long-nap")).status == "cancelled"


async def test_cancel_from_another_app_instance_reaches_the_run(
    make_app: Callable[..., Workflow],
) -> None:
    """A cancel sent through another app on the same store (another process) stops a waiting run."""
    wf = make_app(lease_ttl=1.5, heartbeat=0.05)
    remote = make_app()

    @wf.workflow(id="remote-cancel")
    async def flow() -> Any:
        await wf.sleep(60)

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "remote-cancel", steps=1)
    await remote.cancel("remote-cancel")
    with pytest.raises(RunCancelledError):
        await asyncio.wait_for(call, 2)
    assert (await remote.get_run("remote-cancel")).status == "cancelled"


async def test_cancel_of_finished_runs(wf: Workflow) -> None:
    """Cancelling a completed run changes nothing; a failed run becomes cancelled until resumed."""
    fail = {"armed": True}

    @wf.task
    async def work() -> str:
        if fail["armed"]:
            raise RuntimeError("broken")
        return "fixed"

    @wf.workflow(id="finished-{kind}")
    async def flow(kind: str) -> str:
        if kind == "ok":
            return "ok"
        return await work()

    assert await flow("ok") == "ok"
    await wf.cancel("finished-ok")
    assert (await wf.get_run("finished-ok")).status == "completed"
    assert await flow("ok") == "ok"

    with pytest.raises(RuntimeError):
        await flow("bad")
    await wf.cancel("finished-bad")
    assert (await wf.get_run("finished-bad")).status == "cancelled"
    fail["armed"] = False
    with pytest.raises(RunCancelledError):
        await flow("bad")
    assert await wf.resume("finished-bad") == "fixed"


async def test_unknown_run_ids_are_reported(wf: Workflow) -> None:
    """cancel, resume and get_run name the missing run id in RunNotFoundError."""
    for operation in (wf.cancel, wf.resume, wf.get_run):
        with pytest.raises(RunNotFoundError, match="'ghost'"):
            await operation("ghost")


def _parent_and_child(wf: Workflow, journal: Journal) -> Any:
    @wf.task
    async def note(what: str) -> str:
        journal(what)
        return what

    @wf.workflow(id="child-{n}")
    async def child(n: int) -> str:
        await note("child started")
        await wf.sleep(60)
        return await note("child done")

    @wf.workflow(id="parent-{n}")
    async def parent(n: int) -> str:
        await note("parent started")
        return await child(n)

    return parent


async def test_cancelling_a_parent_cancels_the_child_it_waits_on(wf: Workflow) -> None:
    """The child stops at once; both runs end cancelled; the parent's error names the parent."""
    journal = Journal()
    parent = _parent_and_child(wf, journal)
    call = asyncio.ensure_future(parent(1))
    await wait_for_run(wf, "child-1", steps=2)
    await wf.cancel("parent-1")
    with pytest.raises(RunCancelledError, match="run 'parent-1'"):
        await asyncio.wait_for(call, 2)
    assert (await wf.get_run("parent-1")).status == "cancelled"
    child = await wf.get_run("child-1")
    assert child.status == "cancelled"
    assert child.error is not None
    assert "with its parent run 'parent-1'" in child.error.message
    with pytest.raises(RunCancelledError):
        await parent(1)


async def test_resuming_a_parent_resumes_the_child_cancelled_with_it(wf: Workflow) -> None:
    """wf.resume(parent) continues the child where it stopped: no completed step runs again."""
    journal = Journal()
    parent = _parent_and_child(wf, journal)
    call = asyncio.ensure_future(parent(2))
    await wait_for_run(wf, "child-2", steps=2)
    await wf.cancel("parent-2")
    with pytest.raises(RunCancelledError):
        await asyncio.wait_for(call, 2)
    with skip_sleeps():
        assert await wf.resume("parent-2") == "child done"
    assert journal.entries == ["parent started", "child started", "child done"]
    assert (await wf.get_run("child-2")).status == "completed"


async def test_a_parent_cancelled_from_elsewhere_stops_its_child_within_a_heartbeat(
    make_app: Callable[..., Workflow],
) -> None:
    """A cancel sent by another process reaches a child of the cancelled run."""
    wf = make_app(lease_ttl=1.5, heartbeat=0.05)
    remote = make_app()
    journal = Journal()
    parent = _parent_and_child(wf, journal)
    call = asyncio.ensure_future(parent(3))
    await wait_for_run(wf, "child-3", steps=2)
    await remote.cancel("parent-3")
    with pytest.raises(RunCancelledError, match="run 'parent-3'"):
        await asyncio.wait_for(call, 2)
    assert (await remote.get_run("child-3")).status == "cancelled"


async def test_a_cancel_reaches_a_child_that_recover_resumed_before_its_parent(
    wf: Workflow,
) -> None:
    """recover() may start a child before its parent joins it: a cancel still reaches both."""

    @wf.workflow(id="kid-{n}")
    async def kid(n: int) -> str:
        return str(await wf.signal("go"))

    @wf.workflow(id="mom-{n}")
    async def mom(n: int) -> str:
        return await kid(n)

    first = asyncio.ensure_future(mom(1))
    await wait_for_run(wf, "kid-1")
    await asyncio.sleep(0.05)  # both runs are waiting now
    first.cancel()  # as if the process died: both runs stay 'running', ownerless
    with pytest.raises(asyncio.CancelledError):
        await first
    for _ in range(200):  # until both executions have released their runs
        runs = await wf.store.list_runs(wf.name, status="running")
        if len(runs) == 2 and all(run.owner is None for run in runs):
            break
        await asyncio.sleep(0.01)
    recovery = asyncio.ensure_future(wf.recover())
    for _ in range(200):  # until recover() executes both again
        if {"kid-1", "mom-1"} <= set(wf._executor._active):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await wf.cancel("mom-1")
    assert sorted(await asyncio.wait_for(recovery, 3)) == ["kid-1", "mom-1"]
    assert (await wf.get_run("mom-1")).status == "cancelled"
    assert (await wf.get_run("kid-1")).status == "cancelled"


async def test_cancelling_a_run_no_process_executes_cancels_it_at_once(wf: Workflow) -> None:
    """A run left 'running' by a dead process is cancelled by wf.cancel, not left for recover()."""
    journal = Journal()
    parent = _parent_and_child(wf, journal)
    call = asyncio.ensure_future(parent(4))
    await wait_for_run(wf, "child-4", steps=2)
    call.cancel()  # as if the process died: both runs stay 'running', ownerless
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(200):
        runs = await wf.store.list_runs(wf.name, status="running")
        if len(runs) == 2 and all(run.owner is None for run in runs):
            break
        await asyncio.sleep(0.01)
    await wf.cancel("child-4")
    info = await wf.get_run("child-4")
    assert info.status == "cancelled"
    assert info.error is not None
    assert info.error.type == "durable.errors.RunCancelledError"
    assert await wf.recover() == ["parent-4"]
    assert (await wf.get_run("parent-4")).status == "cancelled"


async def test_a_workflow_timeout_cancels_the_child_it_waits_on(wf: Workflow) -> None:
    """Past its timeout the parent fails, and the child it waited on ends cancelled."""

    @wf.workflow(id="slow-child")
    async def slow_child() -> None:
        await wf.sleep(60)

    @wf.workflow(id="impatient", timeout=0.3)
    async def impatient() -> None:
        await slow_child()

    with pytest.raises(WorkflowTimeoutError):
        await asyncio.wait_for(impatient(), 5)
    for _ in range(200):
        child = await wf.get_run("slow-child")
        if child.status != "running":
            break
        await asyncio.sleep(0.01)
    assert child.status == "cancelled"
    assert child.error is not None
    assert "parent run 'impatient' timed out" in child.error.message
    assert await wf.recover() == []
