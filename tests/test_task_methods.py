"""Tasks defined as methods: bound to their instance, checkpointed like any task."""

from __future__ import annotations

import asyncio

from tests._journal import Journal, interrupt

from durable import Workflow


async def test_a_task_method_is_a_checkpointed_step(wf: Workflow) -> None:
    """service.method(...) in a workflow records a step; after an interruption it replays."""
    journal = Journal()

    class Billing:
        def __init__(self, currency: str) -> None:
            self.currency = currency

        @wf.task
        async def charge(self, order_id: str, cents: int) -> str:
            journal(f"charge {order_id}")
            return f"{cents} {self.currency}"

    billing = Billing("EUR")
    gate = asyncio.Event()

    @wf.task
    async def wait_here() -> None:
        journal("waiting")
        await gate.wait()

    @wf.workflow(id="bill-{order_id}")
    async def bill(order_id: str) -> list[str]:
        first = await billing.charge(order_id, 100)
        second = await billing.charge.with_step_id("fee")(order_id, 5)
        await wait_here()
        return [first, second]

    call = asyncio.ensure_future(bill("o-1"))
    await interrupt(call, journal, 3)
    gate.set()
    assert await bill("o-1") == ["100 EUR", "5 EUR"]
    assert journal.entries == ["charge o-1", "charge o-1", "waiting", "waiting"]
    steps = [(s.step_id, s.task) for s in (await wf.get_run("bill-o-1")).steps]
    assert steps == [("charge", "charge"), ("charge:fee", "charge"), ("wait_here", "wait_here")]


async def test_outside_a_workflow_a_task_method_is_the_plain_method(wf: Workflow) -> None:
    """Called outside a workflow, the bound task is the method itself; the class sees the task."""

    class Greeter:
        @wf.task
        async def greet(self, name: str) -> str:
            return f"hello {name} from {type(self).__name__}"

    greeter = Greeter()
    assert await greeter.greet("ada") == "hello ada from Greeter"
    assert await Greeter.greet(greeter, "bob") == "hello bob from Greeter"
    assert greeter.greet.__self__ is greeter
    assert "greet" in repr(greeter.greet)
