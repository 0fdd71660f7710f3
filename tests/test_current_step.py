"""durable.current_step(): what a task body knows about its step, and its idempotency key."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable

import pytest
from tests._journal import Journal

import durable
from durable import StepContext, Workflow, WorkflowFunction
from durable.errors import NotInWorkflowError
from durable.testing import no_backoff


def _key(app: str, run_id: str, step_id: str) -> str:
    """The documented key format, computed here independently of the library."""
    canonical = json.dumps([app, run_id, step_id], ensure_ascii=True, separators=(",", ":"))
    return "dk1-" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


async def test_a_task_sees_its_run_step_and_attempt(wf: Workflow) -> None:
    """The key is made of app, run id and step id; the attempt number counts retries."""
    seen: list[StepContext] = []

    @wf.task(retries=1)
    async def charge(amount: int) -> str:
        step = durable.current_step()
        seen.append(step)
        if step.attempt == 1:
            raise ConnectionError("flaky")
        return step.idempotency_key

    @wf.workflow(id="order-{n}")
    async def order(n: int) -> list[str]:
        return [await charge(10), await charge(20), await charge(30, step_id="refund")]

    with no_backoff():
        keys = await order(7)
    assert keys == [
        _key("test-app", "order-7", "charge"),
        _key("test-app", "order-7", "charge#1"),
        _key("test-app", "order-7", "charge:refund"),
    ]
    assert all(len(key) == 68 for key in keys)
    assert [(s.step_id, s.attempt) for s in seen] == [
        ("charge", 1),
        ("charge", 2),
        ("charge#1", 1),
        ("charge#1", 2),
        ("charge:refund", 1),
        ("charge:refund", 2),
    ]
    assert {(s.app, s.workflow, s.run_id, s.task) for s in seen} == {
        ("test-app", "order", "order-7", "charge")
    }


async def test_the_key_is_the_same_when_a_step_runs_again(wf: Workflow) -> None:
    """A step interrupted before its commit runs again with the same idempotency key."""
    journal = Journal()
    release = asyncio.Event()

    @wf.task
    async def send_mail() -> None:
        journal(durable.current_step().idempotency_key)
        if len(journal) == 1:
            await release.wait()  # interrupted here: no record is written

    @wf.workflow(id="mail-1")
    async def mail() -> str:
        await send_mail()
        return "sent"

    first = asyncio.ensure_future(mail())
    while not journal.entries:  # noqa: ASYNC110 - the journal is a plain list
        await asyncio.sleep(0.005)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await mail() == "sent"
    assert journal.entries == [_key("test-app", "mail-1", "send_mail")] * 2


async def test_concurrent_steps_each_see_their_own(wf: Workflow) -> None:
    """Under asyncio.gather every branch sees its own step."""

    @wf.task
    async def which(i: int) -> str:
        await asyncio.sleep(0.01 * (3 - i))
        return durable.current_step().step_id

    @wf.workflow(id="fan-out")
    async def fan_out() -> list[str]:
        return list(await asyncio.gather(*(which(i, step_id=str(i)) for i in range(3))))

    assert await fan_out() == ["which:0", "which:1", "which:2"]


async def test_outside_a_task_of_a_workflow_it_raises(wf: Workflow) -> None:
    """In a workflow body, or in a task called as a plain function: NotInWorkflowError."""

    @wf.task
    async def plain() -> StepContext:
        return durable.current_step()

    @wf.workflow(id="body")
    async def body() -> None:
        durable.current_step()

    with pytest.raises(NotInWorkflowError, match="current_step"):
        await plain()
    with pytest.raises(NotInWorkflowError, match="current_step"):
        await body()
    with pytest.raises(NotInWorkflowError):
        durable.current_step()


async def test_a_workflow_started_from_a_task_is_not_inside_that_step(wf: Workflow) -> None:
    """A run started in a task body has its own steps; the task's step is not its."""
    seen: list[str] = []

    @wf.task
    async def inner_step() -> str:
        return durable.current_step().step_id

    @wf.workflow(id="inner-{n}")
    async def inner(n: int) -> str:
        with pytest.raises(NotInWorkflowError):
            durable.current_step()
        return await inner_step()

    @wf.task
    async def launcher() -> str:
        seen.append(durable.current_step().step_id)
        return await inner(1)

    @wf.workflow(id="outer-{n}")
    async def outer(n: int) -> str:
        return await launcher()

    assert await outer(1) == "inner_step"
    assert seen == ["launcher"]


async def test_keys_differ_between_apps_and_between_run_and_step_ids_that_share_a_text(
    make_app: Callable[..., Workflow],
) -> None:
    """Two apps with the same run id, and run 'a:b' step 'c' against run 'a' step 'b:c',
    get different idempotency keys."""
    keys: list[str] = []

    def define(app: Workflow) -> WorkflowFunction[[bool], None]:
        @app.task
        async def c() -> None:
            keys.append(durable.current_step().idempotency_key)

        @app.task
        async def b() -> None:
            keys.append(durable.current_step().idempotency_key)

        @app.workflow
        async def flow(explicit: bool) -> None:
            if explicit:
                await b(step_id="c")  # step id "b:c"
            else:
                await c()  # step id "c"

        return flow

    shop = define(make_app("shop"))
    billing = define(make_app("billing"))
    await shop.run("a:b", False)
    await shop.run("a", True)
    await billing.run("a:b", False)
    assert keys == [_key("shop", "a:b", "c"), _key("shop", "a", "b:c"), _key("billing", "a:b", "c")]
    assert len(set(keys)) == 3
