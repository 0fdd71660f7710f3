"""start(), enqueue() and run handles, on every store kind."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from durable import RunHandle, Workflow
from durable.errors import ConfigurationError, RunCancelledError, RunConflictError, RunNotFoundError
from durable.stores.base import Store

pytestmark = pytest.mark.asyncio


def shop(wf: Workflow, calls: list[str], gate: asyncio.Event | None = None) -> tuple:
    @wf.task
    async def charge(order_id: str) -> str:
        calls.append(order_id)
        if gate is not None:
            await gate.wait()
        return f"charged {order_id}"

    @wf.workflow(id="order-{order_id}", queue="orders")
    async def process_order(order_id: str) -> str:
        return await charge(order_id)

    @wf.workflow(id="broken-{n}")
    async def broken(n: int) -> None:
        raise ValueError(f"broken {n}")

    return process_order, broken


async def test_start_records_the_run_before_returning(wf: Workflow, store: Store) -> None:
    """start() returns once the run is stored; it runs in the background; result() awaits it."""
    gate = asyncio.Event()
    calls: list[str] = []
    process_order, _ = shop(wf, calls, gate)
    handle = await process_order.start(order_id="42")
    assert isinstance(handle, RunHandle)
    assert handle.run_id == "order-42"
    stored = await store.get_run(wf.name, "order-42")
    assert stored is not None
    assert stored.status == "running"
    assert await handle.status() == "running"
    gate.set()
    assert await handle.result(timeout=10) == "charged 42"
    assert await handle.status() == "completed"
    assert calls == ["42"]


async def test_start_again_returns_the_same_run(wf: Workflow) -> None:
    """Starting an existing run id returns its handle; other arguments are a conflict."""
    calls: list[str] = []
    process_order, _ = shop(wf, calls)
    first = await process_order.start(order_id="1")
    assert await first.result(timeout=10) == "charged 1"
    again = await process_order.start(order_id="1")
    assert again.run_id == first.run_id
    assert await again.result(timeout=10) == "charged 1"
    assert calls == ["1"]

    @wf.workflow(id="fixed")
    async def fixed(n: int) -> int:
        return n

    await (await fixed.start(n=1)).result(timeout=10)
    with pytest.raises(RunConflictError, match="'n'"):
        await fixed.start(n=2)


async def test_result_raises_the_runs_error(wf: Workflow) -> None:
    """A failed run's error is raised by result(), as calling it would."""
    _, broken = shop(wf, [])
    handle = await broken.start(n=3)
    with pytest.raises(ValueError, match="broken 3"):
        await handle.result(timeout=10)
    assert await handle.status() == "failed"


async def test_result_timeout_raises_timeout_error(wf: Workflow) -> None:
    """result(timeout=) raises TimeoutError when the run is not done; the run goes on."""
    gate = asyncio.Event()
    process_order, _ = shop(wf, [], gate)
    handle = await process_order.start(order_id="slow")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="order-slow"):
        await handle.result(timeout=0.2)
    assert time.monotonic() - started < 5
    assert await handle.status() == "running"
    gate.set()
    assert await handle.result(timeout=10) == "charged slow"


async def test_cancel_through_the_handle(wf: Workflow) -> None:
    """h.cancel() stops a started run at its next step boundary; result() raises
    RunCancelledError."""
    gate = asyncio.Event()
    shipped: list[str] = []

    @wf.task
    async def pack(order_id: str) -> None:
        await gate.wait()

    @wf.task
    async def ship(order_id: str) -> None:
        shipped.append(order_id)

    @wf.workflow(id="parcel-{order_id}")
    async def parcel(order_id: str) -> None:
        await pack(order_id)
        await ship(order_id)

    handle = await parcel.start(order_id="c")
    await handle.cancel()
    gate.set()
    with pytest.raises(RunCancelledError):
        await handle.result(timeout=10)
    assert await handle.status() == "cancelled"
    assert shipped == []


async def test_enqueue_records_a_queued_run(wf: Workflow, store: Store) -> None:
    """enqueue() stores the run queued in the workflow's queue, with priority and delay."""
    process_order, _ = shop(wf, [])
    handle = await process_order.enqueue(order_id="43", priority=1, delay=timedelta(minutes=5))
    assert handle.run_id == "order-43"
    assert await handle.status() == "queued"
    run = await store.get_run(wf.name, "order-43")
    assert run is not None
    assert (run.status, run.queue, run.priority) == ("queued", "orders", 1)
    assert run.not_before is not None
    assert run.not_before == pytest.approx(time.time() + 300, abs=30)
    assert await wf.handle("order-43").status() == "queued"


async def test_enqueue_options(wf: Workflow, store: Store) -> None:
    """queue=, not_before= and run_id= are honoured; the default queue is 'default'."""

    @wf.workflow
    async def plain(n: int) -> int:
        return n

    when = datetime(2030, 1, 1, tzinfo=UTC)
    a = await plain.enqueue(1)
    b = await plain.enqueue(2, queue="other", not_before=when, run_id="explicit")
    run_a = await store.get_run(wf.name, a.run_id)
    run_b = await store.get_run(wf.name, "explicit")
    assert run_a is not None
    assert run_b is not None
    assert (run_a.queue, run_a.not_before) == ("default", None)
    assert (run_b.queue, run_b.not_before) == ("other", when.timestamp())
    assert b.run_id == "explicit"


async def test_enqueue_again_returns_the_existing_run(wf: Workflow) -> None:
    """Enqueueing the same run id twice keeps one run; other arguments are a conflict."""

    @wf.workflow(id="job")
    async def job(n: int) -> int:
        return n

    first = await job.enqueue(n=1)
    again = await job.enqueue(n=1, priority=5)
    assert again.run_id == first.run_id
    assert len(await wf.list_runs(status="queued")) == 1
    with pytest.raises(RunConflictError, match="'n'"):
        await job.enqueue(n=2)


async def test_enqueue_refuses_bad_options(wf: Workflow) -> None:
    """Bad options are named; nothing is stored."""
    process_order, _ = shop(wf, [])
    with pytest.raises(ConfigurationError, match="priority"):
        await process_order.enqueue(order_id="1", priority="high")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="delay or not_before"):
        await process_order.enqueue(order_id="1", delay=1, not_before=time.time())
    with pytest.raises(ConfigurationError, match="delay"):
        await process_order.enqueue(order_id="1", delay=-1)
    with pytest.raises(TypeError, match="process_order"):
        await process_order.enqueue(order_number="1")
    assert await wf.list_runs() == []


async def test_cancel_of_a_queued_run(wf: Workflow) -> None:
    """A queued run cancels at once and never starts."""
    process_order, _ = shop(wf, [])
    handle = await process_order.enqueue(order_id="x")
    await handle.cancel()
    assert await handle.status() == "cancelled"
    with pytest.raises(RunCancelledError):
        await handle.result(timeout=1)


async def test_handle_of_an_unknown_run(wf: Workflow) -> None:
    """A handle on a run id that does not exist raises RunNotFoundError when used."""
    handle = wf.handle("nope")
    with pytest.raises(RunNotFoundError, match="nope"):
        await handle.status()


async def test_calling_a_queued_run_runs_it_here(wf: Workflow) -> None:
    """Awaiting the workflow for a queued run id executes it now, in the caller."""
    calls: list[str] = []
    process_order, _ = shop(wf, calls)
    handle = await process_order.enqueue(order_id="7", delay=3600)
    assert await process_order(order_id="7") == "charged 7"
    assert await handle.status() == "completed"
    assert calls == ["7"]


async def test_handle_from_another_app_instance(make_app, store: Store) -> None:  # type: ignore[no-untyped-def]
    """A handle made in another app object (another process) sees the run and its output."""
    first = make_app("shop")
    process_order, _ = shop(first, [])
    await (await process_order.start(order_id="9")).result(timeout=10)
    other = make_app("shop")
    handle = other.handle("order-9")
    assert await handle.status() == "completed"
    # The workflow is not registered there: the output comes back as plain JSON.
    assert await handle.result() == "charged 9"


async def test_enqueue_refuses_a_workflow_whose_parameters_shadow_its_options(
    wf: Workflow,
) -> None:
    """A workflow parameter named like an enqueue() option is refused, not swallowed."""

    @wf.workflow
    async def ranked(priority: int) -> int:
        return priority

    with pytest.raises(ConfigurationError, match="priority"):
        await ranked.enqueue(priority=3)
    assert await wf.list_runs() == []


async def test_result_waits_out_an_unreachable_store(
    wf: Workflow, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """result() keeps waiting while the store is unreachable, then answers."""
    from durable.errors import StoreUnavailableError

    process_order, _ = shop(wf, [])
    handle = await process_order.start(order_id="outage")
    real_get_run = store.get_run
    failures = 3

    async def flaky(app: str, run_id: str):  # type: ignore[no-untyped-def]
        nonlocal failures
        if failures:
            failures -= 1
            raise StoreUnavailableError("the store is restarting")
        return await real_get_run(app, run_id)

    monkeypatch.setattr(store, "get_run", flaky)
    assert await handle.result(timeout=30) == "charged outage"
    assert failures == 0
